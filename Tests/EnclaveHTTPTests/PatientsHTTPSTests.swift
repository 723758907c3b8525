import Enclave
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import Foundation
import Testing

@Suite("Patients' requests over HTTPS")
struct PatientsHTTPSTests {
    @Test(
        "the owner finds a patient by number in the body, logs a request, reads its report as JSON and CSV without PHI; an agency member gets 403"
    )
    func lookupAndReport() async throws {
        try await LiveServer.with { server in
            let (_, _, _, memberToken, ownerToken) = try await AgencyAccessHTTPSTests.growthCo(server)
            let call =
                #"{"caller_number": "+1 555 010 4477", "caller_name": "Pat Plantedname", "started_at": "2026-11-28T09:30:00Z"}"#
            #expect(try await server.signedCall(call, key: "p-1").status == 201)
            let practice = server.practice.uuidString.lowercased()
            let lookup = Array(#"{"phone_number": "(555) 010-4477"}"#.utf8)

            let refused = try await server.request(
                "POST", "/v1/practices/\(practice)/patients/lookup", token: memberToken, body: lookup)
            #expect(refused.status == 403)
            let empty = try await server.request(
                "POST", "/v1/practices/\(practice)/patients/lookup", token: ownerToken, body: Array("{}".utf8))
            #expect(empty.status == 400)

            let found = try await server.request(
                "POST", "/v1/practices/\(practice)/patients/lookup", token: ownerToken, body: lookup)
            #expect(found.status == 200)
            let leads = try #require(try JSONSerialization.jsonObject(with: found.data) as? [[String: Any]])
            let lead = try #require(leads.first?["id"] as? String)
            #expect(leads.count == 1 && !String(decoding: found.data, as: UTF8.self).contains("Plantedname"))

            let logged = try await server.request(
                "POST", "/v1/practices/\(practice)/patient-requests", token: ownerToken,
                body: Array(#"{"kind": "access_report", "received_on": "2026-12-01", "lead_ids": ["\#(lead)"]}"#.utf8))
            #expect(logged.status == 201)
            let request = try #require(logged.json["id"] as? String)
            let listed = try await server.request(
                "GET", "/v1/practices/\(practice)/patient-requests", token: ownerToken)
            #expect(listed.status == 200 && String(decoding: listed.data, as: UTF8.self).contains("2027-01-30"))

            let report = try await server.request(
                "GET", "/v1/practices/\(practice)/patient-requests/\(request)/report", token: ownerToken)
            #expect(report.status == 200)
            let events = try #require(try JSONSerialization.jsonObject(with: report.data) as? [[String: Any]])
            #expect(events.contains { $0["action"] as? String == "lead.created" && $0["lead_id"] as? String == lead })
            let csv = try await server.request(
                "GET", "/v1/practices/\(practice)/patient-requests/\(request)/report?format=csv", token: ownerToken)
            #expect(csv.status == 200 && csv.header("Content-Type")?.hasPrefix("text/csv") == true)
            let text = String(decoding: csv.data, as: UTF8.self)
            #expect(text.contains(lead) && !text.contains("Plantedname") && !text.contains("4477"))
            let memberReport = try await server.request(
                "GET", "/v1/practices/\(practice)/patient-requests/\(request)/report", token: memberToken)
            #expect(memberReport.status == 403)

            let done = try await server.request(
                "POST", "/v1/practices/\(practice)/patient-requests/\(request)/complete", token: ownerToken)
            #expect(done.status == 204)
            let again = try await server.request(
                "POST", "/v1/practices/\(practice)/patient-requests/\(request)/complete", token: ownerToken)
            #expect(again.status == 409)
            // Erasure and restriction answer only their own kind of request.
            let wrongKind = try await server.request(
                "POST", "/v1/practices/\(practice)/patient-requests/\(request)/erase", token: ownerToken)
            #expect(wrongKind.status == 400)
            let restriction = try await server.request(
                "POST", "/v1/practices/\(practice)/patient-requests", token: ownerToken,
                body: Array(#"{"kind": "restriction", "received_on": "2026-12-01", "lead_ids": ["\#(lead)"]}"#.utf8))
            let restrictionID = try #require(restriction.json["id"] as? String)
            let restricted = try await server.request(
                "POST", "/v1/practices/\(practice)/patient-requests/\(restrictionID)/restrict", token: ownerToken)
            #expect(restricted.status == 200 && restricted.json["restricted"] as? Int == 1)
        }
    }
}
