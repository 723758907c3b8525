import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// One-time codes cannot be guessed (issue 25): the database counts every wrong code, per
/// session and per user, whatever the service does, and audits each.
@Suite("Wrong one-time codes end the session, then hold the user back, then lock the codes")
struct CodeGuessingTests {
    static let wrong = AccessError(.invalidCredentials, "wrong or already used code")
    static let ended = AccessError(.unauthenticated, "too many wrong codes: sign in again")
    static let gone = AccessError(.unauthenticated, "sign in again: the session is not valid")
    static let held = AccessError(.throttled, "too many wrong codes; try again in 15 minutes")
    static let locked = AccessError(.throttled, "too many wrong codes: ask an operator to unlock your account")

    /// The platform chain's `action` events about `user`, oldest first, as outcome and reason.
    func events(_ fixture: IdentityFixture, _ action: String, user: UUID) async throws -> [String] {
        let connection = try await fixture.keys.database.connect()
        defer { Task { await connection.close() } }
        return try await connection.query(
            """
            select outcome || ' ' || coalesce(reason, '-') as line from enclave.audit_events
            where tenant_id = '00000000-0000-0000-0000-000000000000' and action = $1 and actor_id = $2 order by seq
            """, [action, user]
        ).map { try $0.decode(String.self, "line") }
    }

    @Test("the fifth wrong code ends a session before MFA: the right code no longer opens it; each is audited")
    func sessionEnds() async throws {
        try await IdentityFixture.with { fixture in
            let login = try await fixture.identity.login(
                email: "member@agency.test", password: IdentityFixture.password)
            let at = IdentityFixture.start.addingTimeInterval(60)
            for _ in 0..<4 {
                await #expect(throws: Self.wrong) {
                    try await fixture.identity.verifyMFA(login.token, code: "000000", at: at)
                }
            }
            await #expect(throws: Self.ended) {
                try await fixture.identity.verifyMFA(login.token, code: "000000", at: at)
            }
            let right = try await IdentityFixture.code(fixture.keys, "member@agency.test", step: 2)
            await #expect(throws: Self.gone) { try await fixture.identity.verifyMFA(login.token, code: right, at: at) }
            let failures = try await events(fixture, "auth.mfa_failed", user: fixture.member)
            #expect(failures == Array(repeating: "denied wrong password or code", count: 5))
            // A new sign-in may try again, and the right code opens it.
            let again = try await fixture.identity.login(
                email: "member@agency.test", password: IdentityFixture.password)
            try await fixture.identity.verifyMFA(again.token, code: right, at: at)
        }
    }

    @Test(
        "ten wrong codes across sessions hold the user back 15 minutes; twenty in a day lock the codes until unlocked")
    func userLocks() async throws {
        try await IdentityFixture.with { fixture in
            let at = IdentityFixture.start.addingTimeInterval(60)
            let right = try await IdentityFixture.code(fixture.keys, "member@agency.test", step: 2)
            func session() async throws -> SessionToken {
                try await fixture.identity.login(email: "member@agency.test", password: IdentityFixture.password).token
            }
            func guess(_ token: SessionToken, _ code: String = "000000") async -> AccessError? {
                do {
                    try await fixture.identity.verifyMFA(token, code: code, at: at)
                    return nil
                } catch {
                    return error as? AccessError
                }
            }
            for _ in 0..<2 {
                let token = try await session()
                for _ in 0..<5 { _ = await guess(token) }
            }
            // Ten failures: held back, even with the right code, in a new session.
            let held = try await session()
            #expect(await guess(held, right) == Self.held)
            // Fifteen minutes later it may guess again, until twenty in the day.
            for round in 0..<2 {
                try await fixture.superuser(
                    "update enclave.login_failures set window_started = now() - interval '16 minutes' where subject = $1",
                    ["mfa-backoff:" + fixture.member.uuidString.lowercased()])
                let token = try await session()
                for attempt in 0..<5 {
                    let answer = await guess(token)
                    if round == 1 && attempt == 4 {
                        #expect(answer == Self.locked)
                    } else {
                        #expect(answer == (attempt == 4 ? Self.ended : Self.wrong))
                    }
                }
            }
            try await fixture.superuser(
                "update enclave.login_failures set window_started = now() - interval '16 minutes' where subject = $1",
                ["mfa-backoff:" + fixture.member.uuidString.lowercased()])
            let lockedOut = try await session()
            #expect(await guess(lockedOut, right) == Self.locked)
            let failures = try await events(fixture, "auth.mfa_failed", user: fixture.member)
            #expect(failures.count == 20)
            // An operator lifts the lock (audited); the right code works again.
            let maintenance = try fixture.keys.maintenance()
            defer { Task { await maintenance.pool.close() } }
            let directory = Directory(pool: maintenance.pool, passwordCost: .testing)
            try await directory.unlockCodes(email: "member@agency.test")
            let unlocked = try await session()
            #expect(await guess(unlocked, right) == nil)
            await #expect(throws: AccessError(.notFound, "no such user")) {
                try await directory.unlockCodes(email: "nobody@nowhere.test")
            }
        }
    }

    @Test("wrong codes at re-authentication count too: the fifth ends the session")
    func reauthentication() async throws {
        try await IdentityFixture.with { fixture in
            for _ in 0..<4 {
                await #expect(throws: AccessError(.invalidCredentials, "wrong password or code")) {
                    _ = try await fixture.identity.reauthenticate(
                        fixture.memberToken, password: IdentityFixture.password, code: "000000")
                }
            }
            await #expect(throws: Self.ended) {
                _ = try await fixture.identity.reauthenticate(
                    fixture.memberToken, password: IdentityFixture.password, code: "000000")
            }
            await #expect(throws: Self.gone) { _ = try await fixture.identity.me(fixture.memberToken) }
            let failures = try await events(fixture, "auth.reauth", user: fixture.member)
            #expect(failures == Array(repeating: "denied wrong password or code", count: 5))
        }
    }

    @Test("the service role cannot clear a lock: only the maintenance role may")
    func unlockNeedsOperator() async throws {
        try await IdentityFixture.with { fixture in
            let app = try await fixture.keys.database.connect(DatabaseRole.app.variable)
            defer { Task { await app.close() } }
            await #expect(throws: PostgresError.self) {
                try await app.query("select enclave_private.unlock_mfa('member@agency.test')")
            }
        }
    }
}
