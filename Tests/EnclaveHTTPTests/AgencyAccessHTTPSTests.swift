import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import EnclaveHTTP

@Suite("Agencies over HTTPS")
struct AgencyAccessHTTPSTests {
    @Test(
        "an assigned agency member with an active BAA reads decrypted leads; after the owner revokes, the same token gets 403"
    )
    func agencyMemberLosesAccessOnRevocation() async throws {
        try await LiveServer.with { server in
            let agency = try await server.people.createAgency(name: "Growth Co")
            let admin = try await server.people.createUser(
                email: "admin@growth.test", displayName: "Ada", password: "admin password 12")
            try await server.people.grant(user: admin, role: .agencyAdmin, agency: agency)
            let member = try await server.people.createUser(
                email: "mel@growth.test", displayName: "Mel", password: "member password 12")
            try await server.people.grant(user: member, role: .agencyMember, agency: agency)
            let adminToken = try await server.mfaSession(email: "admin@growth.test", password: "admin password 12")
            let memberToken = try await server.mfaSession(email: "mel@growth.test", password: "member password 12")
            let ownerToken = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")

            let call =
                #"{"caller_number": "+1 555 010 4477", "caller_name": "Pat Doe", "started_at": "2026-11-28T09:30:00Z"}"#
            #expect(try await server.signedCall(call, key: nil).status == 201)

            // Before any agreement the member reaches nothing.
            let none = try await server.request("GET", "/v1/practices", token: memberToken)
            #expect(none.status == 200)
            #expect(none.array.isEmpty)
            let early = try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: memberToken)
            #expect(early.status == 403)

            // The agency admin proposes; bad proposals change nothing.
            let badProposal = try await server.request(
                "POST", "/v1/agreements/proposals", token: adminToken,
                body: Array(
                    "{\"agency_id\": \"\(agency)\", \"practice_id\": \"\(server.practice)\", \"scopes\": [\"leads.read\"], \"document_sha256\": \"zz\"}"
                        .utf8))
            #expect(badProposal.status == 400)
            let digest = SHA256.hash(Array("signed BAA".utf8)).map { String(format: "%02x", $0) }.joined()
            let proposal = try await server.request(
                "POST", "/v1/agreements/proposals", token: adminToken,
                body: Array(
                    "{\"agency_id\": \"\(agency)\", \"practice_id\": \"\(server.practice)\", \"scopes\": [\"leads.read\", \"recordings.listen\"], \"document_sha256\": \"\(digest)\"}"
                        .utf8))
            #expect(proposal.status == 201, "\(proposal.body)")
            let agreement = try #require(proposal.json["id"] as? String)
            #expect(
                try await server.request(
                    "PUT", "/v1/agencies/\(agency)/practices/\(server.practice)/members/\(member)", token: adminToken
                ).status == 204)
            #expect(
                try await server.request(
                    "PUT", "/v1/agencies/\(agency)/practices/\(server.practice)/members/\(member)", token: memberToken
                ).status == 403, "only an agency admin assigns")
            // Proposed is not in force.
            #expect(
                try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: memberToken).status
                    == 403)
            #expect(
                try await server.request("POST", "/v1/agreements/\(agreement)/approve", token: adminToken).status
                    == 403, "the agency cannot approve its own proposal")
            #expect(
                try await server.request("POST", "/v1/agreements/\(agreement)/approve", token: ownerToken).status
                    == 204)

            let reachable = try await server.request("GET", "/v1/practices", token: memberToken)
            #expect(reachable.array.first?["id"] as? String == server.practice.uuidString.lowercased())
            #expect(reachable.array.first?["via"] as? String == "agreement")
            let leads = try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: memberToken)
            #expect(leads.status == 200)
            #expect(leads.headers.lowercased().contains("cache-control: no-store"))
            #expect((leads.json["leads"] as? [[String: Any]])?.first?["caller_name"] as? String == "Pat Doe")
            let byCaller = try await server.request(
                "GET", "/v1/practices/\(server.practice)/leads?caller=%2B15550104477", token: memberToken)
            #expect((byCaller.json["leads"] as? [[String: Any]])?.count == 1, "\(byCaller.body)")

            // The owner sees the member's reads in the trail and in the accounting of disclosures.
            let trail = try await server.request(
                "GET", "/v1/practices/\(server.practice)/audit?action=phi.read", token: ownerToken)
            #expect(trail.status == 200)
            #expect(trail.array.contains { $0["actor_email"] as? String == "mel@growth.test" })
            let disclosures = try await server.request(
                "GET", "/v1/practices/\(server.practice)/disclosures", token: ownerToken)
            #expect(disclosures.status == 200)
            #expect(disclosures.array.contains { $0["agency"] as? String == "Growth Co" })
            #expect(
                try await server.request("GET", "/v1/practices/\(server.practice)/audit", token: memberToken).status
                    == 403, "only owners read the trail")

            // Revoked: the very next request with the same token is refused.
            #expect(
                try await server.request("POST", "/v1/agreements/\(agreement)/revoke", token: ownerToken).status
                    == 204)
            let after = try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: memberToken)
            #expect(after.status == 403)
            #expect(after.headers.lowercased().contains("content-type: application/problem+json"))
            #expect(after.json["type"] as? String == "https://enclave.dev/problems/forbidden")
            #expect(!after.body.contains("Pat Doe"))
            #expect(
                try await server.request(
                    "DELETE", "/v1/agencies/\(agency)/practices/\(server.practice)/members/\(member)", token: adminToken
                ).status == 204)
            #expect(
                try await server.request(
                    "DELETE", "/v1/agencies/\(agency)/practices/\(server.practice)/members/\(member)", token: adminToken
                ).status == 404)

            // A second proposal, declined by the owner.
            let second = try await server.request(
                "POST", "/v1/agreements/proposals", token: adminToken,
                body: Array(
                    "{\"agency_id\": \"\(agency)\", \"practice_id\": \"\(server.practice)\", \"scopes\": [\"leads.read\"], \"document_sha256\": \"\(digest)\"}"
                        .utf8))
            let secondID = try #require(second.json["id"] as? String)
            #expect(
                try await server.request("POST", "/v1/agreements/\(secondID)/decline", token: ownerToken).status
                    == 204)
            #expect(
                try await server.request("POST", "/v1/agreements/\(secondID)/decline", token: ownerToken).status
                    == 409)
        }
    }

    @Test("tracking sources: the secret is shown once, rotation replaces it, reports count leads without PHI")
    func sourcesAndReports() async throws {
        try await LiveServer.with { server in
            let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
            let created = try await server.request(
                "POST", "/v1/practices/\(server.practice)/sources", token: token,
                body: Array(
                    #"{"kind": "form", "label": "Contact form", "default_attribution": {"source": "google", "medium": "cpc"}}"#
                        .utf8))
            #expect(created.status == 201, "\(created.body)")
            let secret = try #require(created.json["secret"] as? String)
            let source = try #require((created.json["source"] as? [String: Any])?["id"] as? String)
            let listed = try await server.request("GET", "/v1/practices/\(server.practice)/sources", token: token)
            #expect(listed.array.count == 2)
            #expect(!listed.body.contains(secret), "secrets are never listed")
            #expect(
                try await server.request(
                    "POST", "/v1/practices/\(server.practice)/sources", token: token,
                    body: Array(#"{"kind": "fax", "label": "x"}"#.utf8)
                ).status == 400)

            let form = Array(
                #"{"fields": {"name": "Sam Roe", "phone": "555-010-9999"}, "page_url": "https://smile.test/contact"}"#
                    .utf8)
            let sourceID = try #require(UUID(uuidString: source))
            let stored = try await server.signed(
                "POST", "/v1/ingest/forms", body: form, key: "form-1", secret: secret, source: sourceID)
            #expect(stored.status == 201, "\(stored.body)")

            let rotated = try await server.request(
                "POST", "/v1/practices/\(server.practice)/sources/\(source)/secret", token: token)
            #expect(rotated.status == 200)
            let fresh = try #require(rotated.json["secret"] as? String)
            #expect(fresh != secret)
            let other = Array(#"{"fields": {"name": "Ann"}}"#.utf8)
            #expect(
                try await server.signed("POST", "/v1/ingest/forms", body: other, secret: secret, source: sourceID)
                    .status == 401, "the old secret stopped working")
            #expect(
                try await server.signed("POST", "/v1/ingest/forms", body: other, secret: fresh, source: sourceID)
                    .status == 201)
            #expect(
                try await server.request(
                    "POST", "/v1/practices/\(server.practice)/sources/\(UUID())/secret", token: token
                ).status == 404)

            let since = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-30 * 86_400))
            let until = ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400))
            let report = try await server.request(
                "GET", "/v1/practices/\(server.practice)/reports/leads?since=\(since)&until=\(until)", token: token)
            #expect(report.status == 200, "\(report.body)")
            #expect(report.array.reduce(0) { $0 + ($1["forms"] as? Int ?? 0) } == 2)
            #expect(!report.body.contains("Sam Roe"))
            #expect(
                try await server.request(
                    "GET", "/v1/practices/\(server.practice)/reports/leads?since=\(until)&until=\(since)", token: token
                ).status == 400)
        }
    }
}
