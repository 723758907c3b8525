import Enclave
import EnclaveAPIClient
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@Suite("Agencies over HTTPS")
struct AgencyAccessHTTPSTests {
    /// Growth Co with an admin (Ada) and a member (Mel), both signed in with MFA, and the
    /// practice owner's session: the agency, the member's id, and the three tokens.
    static func growthCo(_ server: LiveServer) async throws -> (
        agency: UUID, member: UUID, adminToken: String, memberToken: String, ownerToken: String
    ) {
        let agency = try await server.people.createAgency(name: "Growth Co")
        let adminID = try await server.people.createUser(
            email: "admin@growth.test", displayName: "Ada", password: "admin password 12")
        try await server.people.grant(user: adminID, role: .agencyAdmin, agency: agency)
        let memberID = try await server.people.createUser(
            email: "mel@growth.test", displayName: "Mel", password: "member password 12")
        try await server.people.grant(user: memberID, role: .agencyMember, agency: agency)
        return (
            agency, memberID,
            try await server.mfaSession(email: "admin@growth.test", password: "admin password 12"),
            try await server.mfaSession(email: "mel@growth.test", password: "member password 12"),
            try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
        )
    }

    /// Growth Co's agreement for the server's practice, with `scopes`, approved by the owner, and
    /// `member` assigned to it; returns the agreement's id.
    static func agreementInForce(
        _ server: LiveServer, agency: UUID, member: UUID, adminToken: String, ownerToken: String,
        scopes: Components.Schemas.AgreementProposal.scopesPayload = [.leads_period_read]
    ) async throws -> String {
        let admin = try server.client(token: adminToken)
        let practice = server.practice.uuidString.lowercased()
        let digest = SHA256.hash(Array("signed BAA".utf8)).map { String(format: "%02x", $0) }.joined()
        let agreement = try await admin.proposeAgreement(
            body: .json(
                .init(agency_id: agency.uuidString, practice_id: practice, scopes: scopes, document_sha256: digest))
        ).created.body.json.id
        _ = try await admin.assignMember(
            path: .init(agencyId: agency.uuidString, practiceId: practice, userId: member.uuidString)
        ).noContent
        _ = try await server.client(token: ownerToken).approveAgreement(path: .init(agreementId: agreement)).noContent
        return agreement
    }

    @Test(
        "an assigned agency member with an active BAA reads decrypted leads; after the owner revokes, the same token gets 403"
    )
    func agencyMemberLosesAccessOnRevocation() async throws {
        try await LiveServer.with { server in
            let (agency, memberID, adminToken, memberToken, ownerToken) = try await Self.growthCo(server)

            let call =
                #"{"caller_number": "+1 555 010 4477", "caller_name": "Pat Doe", "started_at": "2026-11-28T09:30:00Z"}"#
            #expect(try await server.signedCall(call, key: nil).status == 201)

            // Through the client generated from the spec: a spec change that breaks a call
            // fails to compile here.
            let admin = try server.client(token: adminToken)
            let member = try server.client(token: memberToken)
            let owner = try server.client(token: ownerToken)
            let practice = server.practice.uuidString.lowercased()
            let leadsPath = Operations.listLeads.Input.Path(practiceId: practice)
            let assignment = Operations.assignMember.Input.Path(
                agencyId: agency.uuidString, practiceId: practice, userId: memberID.uuidString)
            let unassignment = Operations.unassignMember.Input.Path(
                agencyId: agency.uuidString, practiceId: practice, userId: memberID.uuidString)
            func proposal(_ digest: String, _ scopes: Components.Schemas.AgreementProposal.scopesPayload)
                -> Operations.proposeAgreement.Input.Body
            {
                .json(
                    .init(agency_id: agency.uuidString, practice_id: practice, scopes: scopes, document_sha256: digest))
            }

            // Before any agreement the member reaches nothing.
            #expect(try await member.listPractices().ok.body.json.isEmpty)
            _ = try await member.listLeads(path: leadsPath).forbidden

            // The agency admin proposes; bad proposals change nothing.
            _ = try await admin.proposeAgreement(body: proposal("zz", [.leads_period_read])).badRequest
            let digest = SHA256.hash(Array("signed BAA".utf8)).map { String(format: "%02x", $0) }.joined()
            let agreement = try await admin.proposeAgreement(
                body: proposal(digest, [.leads_period_read, .recordings_period_listen])
            ).created.body.json.id
            _ = try await admin.assignMember(path: assignment).noContent
            // Only an agency admin assigns.
            _ = try await member.assignMember(path: assignment).forbidden
            // Proposed is not in force; the agency cannot approve its own proposal.
            _ = try await member.listLeads(path: leadsPath).forbidden
            _ = try await admin.approveAgreement(path: .init(agreementId: agreement)).forbidden
            // What the owner reads before approving: the agency and the signed document's hash.
            let pending = try await owner.listAgreements().ok.body.json.first { $0.id == agreement }
            #expect(pending?.document_sha256 == digest)
            #expect(pending?.agency_name.isEmpty == false)
            _ = try await owner.approveAgreement(path: .init(agreementId: agreement)).noContent

            let reachable = try await member.listPractices().ok.body.json
            #expect(reachable.map(\.id) == [practice])
            #expect(reachable.first?.via == "agreement")
            let leads = try await member.listLeads(path: leadsPath).ok.body.json.leads
            #expect(leads.first?.caller_name == "Pat Doe")
            let byCaller = try await member.listLeads(path: leadsPath, query: .init(caller: "+15550104477"))
            #expect(try byCaller.ok.body.json.leads.count == 1)
            // The headers on the wire, through an outside client.
            let raw = try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: memberToken)
            #expect(raw.headers.lowercased().contains("cache-control: no-store"))

            // The owner sees the member's reads in the trail and in the accounting of disclosures.
            let trail = try await owner.practiceAudit(
                path: .init(practiceId: practice), query: .init(action: .phi_period_read)
            ).ok.body.json
            #expect(trail.contains { $0.actor_email == "mel@growth.test" })
            let disclosures = try await owner.practiceDisclosures(path: .init(practiceId: practice)).ok.body.json
            #expect(disclosures.contains { $0.agency == "Growth Co" })
            // Only owners read the trail.
            _ = try await member.practiceAudit(path: .init(practiceId: practice)).forbidden

            // Revoked: the very next request with the same token is refused.
            _ = try await owner.revokeAgreement(path: .init(agreementId: agreement)).noContent
            let problem = try await member.listLeads(path: leadsPath).forbidden.body.application_problem_plus_json
            #expect(problem._type == "https://enclave.dev/problems/forbidden")
            #expect(!"\(problem)".contains("Pat Doe"))
            _ = try await admin.unassignMember(path: unassignment).noContent
            _ = try await admin.unassignMember(path: unassignment).notFound

            // A second proposal, declined by the owner.
            let second = try await admin.proposeAgreement(body: proposal(digest, [.leads_period_read])).created.body
                .json
            _ = try await owner.declineAgreement(path: .init(agreementId: second.id)).noContent
            _ = try await owner.declineAgreement(path: .init(agreementId: second.id)).conflict
        }
    }

    @Test("a revocation committed between two requests of one kept-alive connection refuses the second")
    func revocationBetweenKeptAliveRequests() async throws {
        try await LiveServer.with { server in
            let (agency, memberID, adminToken, memberToken, ownerToken) = try await Self.growthCo(server)
            #expect(
                try await server.signedCall(
                    #"{"caller_number": "+1 555 010 4477", "started_at": "2026-11-28T09:30:00Z"}"#, key: nil
                ).status == 201)
            let owner = try server.client(token: ownerToken)
            let practice = server.practice.uuidString.lowercased()
            let agreement = try await Self.agreementInForce(
                server, agency: agency, member: memberID, adminToken: adminToken, ownerToken: ownerToken)

            let statuses = try await server.keepAliveGets(
                "/v1/practices/\(practice)/leads?limit=50", token: memberToken
            ) {
                _ = try await owner.revokeAgreement(path: .init(agreementId: agreement)).noContent
            }
            #expect(statuses.first == 200)
            #expect(statuses.second == 403)
        }
    }

    @Test("tracking sources: the secret is shown once, rotation replaces it, reports count leads without PHI")
    func sourcesAndReports() async throws {
        try await LiveServer.with { server in
            let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
            let owner = try server.client(token: token)
            let practice = server.practice.uuidString.lowercased()
            let created = try await owner.createSource(
                path: .init(practiceId: practice),
                body: .json(
                    .init(
                        kind: .form, label: "Contact form", default_attribution: .init(source: "google", medium: "cpc"))
                )
            ).created.body.json
            let secret = created.secret
            let listed = try await owner.listSources(path: .init(practiceId: practice)).ok.body.json
            #expect(listed.count == 2)
            #expect(!"\(listed)".contains(secret), "secrets are never listed")
            // A kind outside the spec's enum cannot be sent through the typed client: on the wire.
            #expect(
                try await server.request(
                    "POST", "/v1/practices/\(server.practice)/sources", token: token,
                    body: Array(#"{"kind": "fax", "label": "x"}"#.utf8)
                ).status == 400)

            // Signed ingest stays on the wire: the signature covers the exact bytes sent.
            let form = Array(
                #"{"fields": {"name": "Sam Roe", "phone": "555-010-9999"}, "page_url": "https://smile.test/contact"}"#
                    .utf8)
            let sourceID = try #require(UUID(uuidString: created.source.id))
            let stored = try await server.signed(
                "POST", "/v1/ingest/forms", body: form, key: "form-1", secret: secret, source: sourceID)
            #expect(stored.status == 201, "\(stored.body)")

            let rotation = Operations.rotateSourceSecret.Input.Path(practiceId: practice, sourceId: created.source.id)
            let fresh = try await owner.rotateSourceSecret(path: rotation).ok.body.json.secret
            #expect(fresh != secret)
            let other = Array(#"{"fields": {"name": "Ann"}}"#.utf8)
            #expect(
                try await server.signed("POST", "/v1/ingest/forms", body: other, secret: secret, source: sourceID)
                    .status == 401, "the old secret stopped working")
            #expect(
                try await server.signed("POST", "/v1/ingest/forms", body: other, secret: fresh, source: sourceID)
                    .status == 201)
            _ = try await owner.rotateSourceSecret(
                path: .init(practiceId: practice, sourceId: UUID().uuidString)
            ).notFound

            let since = Date().addingTimeInterval(-30 * 86_400)
            let until = Date().addingTimeInterval(86_400)
            let report = try await owner.leadReport(
                path: .init(practiceId: practice), query: .init(since: since, until: until)
            ).ok.body.json
            #expect(report.reduce(0) { $0 + $1.forms } == 2)
            #expect(!"\(report)".contains("Sam Roe"))
            _ = try await owner.leadReport(
                path: .init(practiceId: practice), query: .init(since: until, until: since)
            ).badRequest
        }
    }

    @Test("an agency with 120 practices gets a page of 50 on its overview and home, found by name, never all")
    func longListsArePaged() async throws {
        try await LiveServer.with { server in
            let (agency, _, adminToken, _, _) = try await Self.growthCo(server)
            let superuser = try await server.database.connect()
            defer { Task { await superuser.close() } }
            try await superuser.query(
                """
                with made as (
                    insert into enclave.practices (name)
                    select format('Clinic %s', to_char(n, 'FM000')) from generate_series(1, 120) n returning id),
                agreed as (
                    insert into enclave.baas (agency_id, practice_id, scopes, status, effective_at, document_sha256,
                                              proposed_by)
                    select $1, id, '{leads.read}', 'active', now() - interval '1 day', sha256('paged'), $2 from made
                    returning practice_id)
                insert into enclave.agency_assignments (agency_id, practice_id, user_id, assigned_by)
                select $1, practice_id, $2, $2 from agreed
                """, [agency, try await server.people.user(email: "admin@growth.test")])
            let cookie = ["Cookie": "__Host-enclave=\(adminToken)"]
            func rows(_ html: String, _ marker: String) -> [String] {
                html.components(separatedBy: marker).dropFirst().compactMap {
                    $0.split(separator: "<").first.map(String.init)
                }
            }

            let overview = try await server.request("GET", "/agency", headers: cookie)
            #expect(overview.status == 200)
            #expect(overview.body.contains("Showing 1–50 of 120"))
            let names = rows(overview.body, "/leads\">")
            #expect(names.count == 50 && names.first == "Clinic 001" && names.last == "Clinic 050")
            let last = try await server.request("GET", "/agency?page=3", headers: cookie)
            #expect(rows(last.body, "/leads\">") == (101...120).map { "Clinic \($0)" })
            #expect(last.body.contains("rel=\"prev\"") && !last.body.contains("rel=\"next\""))
            let found = try await server.request("GET", "/agency?q=clinic%20077", headers: cookie)
            #expect(rows(found.body, "/leads\">") == ["Clinic 077"])
            #expect(found.body.contains("Showing 1–1 of 1 matching (of 120)"))
            // A page past the end shows the last; junk in the query changes nothing else.
            let beyond = try await server.request("GET", "/agency?page=99999999999", headers: cookie)
            #expect(rows(beyond.body, "/leads\">").last == "Clinic 120")

            let home = try await server.request("GET", "/home", headers: cookie)
            #expect(home.status == 200)
            #expect(rows(home.body, "/leads\">").count == 50)
            #expect(home.body.contains("Showing 1–50 of 120"))
            let next = try await server.request("GET", "/home?page=2", headers: cookie)
            #expect(rows(next.body, "/leads\">").first == "Clinic 051")
            let end = try await server.request("GET", "/home?page=7", headers: cookie)
            #expect(rows(end.body, "/leads\">") == (101...120).map { "Clinic \($0)" })
            let filtered = try await server.request("GET", "/home?q=Clinic%2011", headers: cookie)
            #expect(rows(filtered.body, "/leads\">") == (110...119).map { "Clinic \($0)" })
            #expect(filtered.body.contains("Showing 1–10 of 10 matching (of 120)"))
            let none = try await server.request("GET", "/home?q=nowhere", headers: cookie)
            #expect(none.body.contains("No practice you reach has that in its name."))
        }
    }
}
