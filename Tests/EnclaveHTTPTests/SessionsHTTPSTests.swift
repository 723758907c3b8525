import Enclave
import EnclaveAPIClient
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@Suite("Sessions and agreements over HTTPS")
struct SessionsHTTPSTests {
    @Test(
        "sessions are listed and revoked; approving needs a fresh re-authentication; approve and revoke change the agreement"
    )
    func sessionsAndAgreements() async throws {
        try await LiveServer.with { server in
            // An agency proposes an agreement to the practice.
            let anonymous = try server.client()
            let agency = try await server.people.createAgency(name: "Growth Co")
            let admin = try await server.people.createUser(
                email: "admin@growth.test", displayName: "Ada", password: "admin password 12")
            try await server.people.grant(user: admin, role: .agencyAdmin, agency: agency)
            // Proposing is sensitive: MFA and a re-authentication in the last five minutes.
            let adminToken = try await server.mfaSession(email: "admin@growth.test", password: "admin password 12")
            let proposal = try await AgreementService(identity: server.identity).propose(
                SessionToken(adminToken), agency: agency, practice: server.practice, scopes: [.leadsRead],
                effectiveAt: Date().addingTimeInterval(-60), expiresAt: nil,
                documentSHA256: SHA256.hash(Array("signed".utf8)))
            let agreement = Operations.approveAgreement.Input.Path(agreementId: proposal.uuidString)

            let ownerLogin = Operations.login.Input.Body.json(
                .init(email: "owner@smile.test", password: "owner password 12"))
            let token = try await anonymous.login(body: ownerLogin).ok.body.json.token
            let owner = try server.client(token: token)
            _ = try await owner.verifyMFA(body: .json(.init(code: try server.code(step: 0)))).noContent
            _ = try await anonymous.login(body: ownerLogin).ok

            let sessions = try await owner.listSessions().ok.body.json
            #expect(sessions.count >= 3)  // the fixture's, this one and the other
            #expect(sessions.filter(\.current).count == 1)
            let otherID = try #require(sessions.first { !$0.current }?.id)
            _ = try await owner.revokeSession(path: .init(sessionId: UUID().uuidString)).notFound
            _ = try await owner.revokeSession(path: .init(sessionId: otherID)).noContent

            // Approval needs a re-authentication in the last five minutes.
            let superuser = try await server.database.connect()
            try await superuser.query("update enclave.sessions set authenticated_at = now() - interval '6 minutes'")
            await superuser.close()
            let stale = try await owner.approveAgreement(path: agreement).forbidden.body.application_problem_plus_json
            #expect(stale._type == "https://enclave.dev/problems/reauthentication-required")
            let fresh = try await owner.reauthenticate(
                body: .json(.init(password: "owner password 12", code: try server.code(step: 1)))
            ).ok.body.json.token
            // The old token stopped working.
            _ = try await owner.me().unauthorized
            let renewed = try server.client(token: fresh)
            _ = try await renewed.approveAgreement(path: agreement).noContent
            let active = try await renewed.listAgreements().ok.body.json
            #expect(active.first?.status == .active)
            #expect(active.first?.in_force == true)
            let revocation = Operations.revokeAgreement.Input.Path(agreementId: proposal.uuidString)
            _ = try await renewed.revokeAgreement(path: revocation).noContent
            _ = try await renewed.revokeAgreement(path: revocation).conflict
            #expect(try await renewed.listAgreements().ok.body.json.first?.status == .revoked)
        }
    }
}
