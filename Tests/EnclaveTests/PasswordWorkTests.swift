import Dispatch
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// Expensive work is bounded (issue 25): password hashing runs at most `limit` at once, off the
/// cooperative pool; past the limit a sign-in is refused at once, and a throttled sign-in is
/// refused before any hashing.
@Suite("Password hashing is bounded, and the throttle comes before it")
struct PasswordWorkTests {
    /// Occupies every slot of `work` until the returned release is called.
    static func occupy(_ work: PasswordWork) async throws -> @Sendable () -> Void {
        let gate = DispatchSemaphore(value: 0)
        for _ in 0..<work.limit {
            Task { try await work.run { gate.wait() } }
        }
        try await waitUntil(timeout: .seconds(10), "every slot is taken") { work.inFlight == work.limit }
        return { for _ in 0..<work.limit { gate.signal() } }
    }

    @Test("past the limit, work is refused at once; when a slot frees, it runs again")
    func limit() async throws {
        let work = PasswordWork(limit: 2)
        let release = try await Self.occupy(work)
        await #expect(throws: PasswordWork.Busy()) { try await work.run { 1 } }
        release()
        try await waitUntil(timeout: .seconds(10), "the slots free") { work.inFlight == 0 }
        #expect(try await work.run { 42 } == 42)
    }

    @Test("a throttled sign-in is refused before hashing; while every slot is busy, any sign-in gets 503 at once")
    func signIn() async throws {
        try await IdentityFixture.with { fixture in
            let work = PasswordWork(limit: 1)
            let identity = IdentityService(
                pool: fixture.identity.pool, authPool: fixture.identity.authPool,
                masterKeys: fixture.identity.masterKeys, masterKeyVersion: fixture.identity.masterKeyVersion,
                policy: fixture.identity.policy, passwordWork: work)
            // Five wrong passwords throttle the account (each hashed, a slot at a time).
            for _ in 0..<5 {
                await #expect(throws: AccessError(.invalidCredentials, "wrong email or password")) {
                    _ = try await identity.login(email: "owner@b.test", password: "wrong password!!")
                }
            }
            // Throttled: refused before any hashing.
            let derived = work.started
            await #expect(throws: AccessError(.throttled, "too many failed sign-ins; try again later")) {
                _ = try await identity.login(email: "owner@b.test", password: IdentityFixture.password)
            }
            #expect(work.started == derived)
            // With every slot busy, a sign-in is refused with 503 at once, before the database
            // is asked anything (throttled or not).
            let release = try await Self.occupy(work)
            for email in ["owner@a.test", "owner@b.test"] {
                await #expect(throws: PasswordWork.Busy()) {
                    _ = try await identity.login(email: email, password: IdentityFixture.password)
                }
            }
            #expect(PasswordWork.Busy().problem?.status == 503)
            release()
            try await waitUntil(timeout: .seconds(10), "the slot frees") { work.inFlight == 0 }
            _ = try await identity.login(email: "owner@a.test", password: IdentityFixture.password)
        }
    }
}
