import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@testable import Enclave

/// Denied access by strangers is counted, not chained per guess (issue 25).
@Suite("Strangers' refusals are counted per address and minute, never chained into a practice's trail")
struct StrangerDenialTests {
    @Test("300 requests with a made-up token to random practices start no chain and add at most a few events")
    func madeUpTokens() async throws {
        try await IdentityFixture.with { fixture in
            let superuser = try await fixture.keys.database.connect()
            defer { Task { await superuser.close() } }
            func count(_ sql: String) async throws -> Int {
                try await superuser.query(sql).first?.decode(Int.self, "n") ?? -1
            }
            let chains = "select count(distinct tenant_id)::int8 as n from enclave.audit_events"
            let platformDenials = """
                select count(*)::int8 as n from enclave.audit_events
                where tenant_id = '00000000-0000-0000-0000-000000000000' and action = 'access.denied'
                """
            let chainsBefore = try await count(chains)
            let deniedBefore = try await count(platformDenials)
            let stranger = SessionToken(String(repeating: "x", count: 43))
            let context = RequestContext(client: ClientInfo(address: "203.0.113.99"))
            for _ in 0..<300 {
                await #expect(throws: AccessError(.unauthenticated, "sign in again: the session is not valid")) {
                    try await fixture.access.withPractice(
                        stranger, practice: UUID(), scope: .leadsRead, context: context
                    ) { _ in true }
                }
            }
            #expect(try await count(chains) == chainsBefore)
            // One event per address and minute (two if the minute turned during the loop).
            let events = try await count(platformDenials) - deniedBefore
            #expect((1...2).contains(events))
            let counted = try await count(
                "select sum(denials)::int8 as n from enclave_private.stranger_denials where address = '203.0.113.99'")
            #expect(counted == 300)
            // A stranger refused at a real practice is counted too, not chained there.
            let before = try await count(
                "select count(*)::int8 as n from enclave.audit_events where tenant_id = '\(fixture.practiceB)'")
            await #expect(throws: AccessError.self) {
                try await fixture.access.withPractice(
                    stranger, practice: fixture.practiceB, scope: .leadsRead, context: context
                ) { _ in true }
            }
            #expect(
                try await count(
                    "select count(*)::int8 as n from enclave.audit_events where tenant_id = '\(fixture.practiceB)'")
                    == before)
            // A signed-in user refused at a practice they cannot reach is still in its trail.
            await #expect(throws: AccessError(.forbidden, "you do not have access to this practice's data")) {
                try await fixture.access.withPractice(
                    fixture.memberToken, practice: fixture.practiceB, scope: .leadsRead
                ) { _ in true }
            }
            #expect(
                try await count(
                    "select count(*)::int8 as n from enclave.audit_events where tenant_id = '\(fixture.practiceB)'")
                    == before + 1)
        }
    }
}
