import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

@Suite("Sign-in, MFA, re-authentication and agreements")
struct IdentityTests {
    @Test("activity keeps a session alive; idleness ends it; a burst of requests writes the session row once")
    func idleTimeout() async throws {
        try await IdentityFixture.with { fixture in
            func lastSeen() async throws -> Date {
                let connection = try await fixture.keys.database.connect()
                defer { Task { await connection.close() } }
                return try #require(
                    try await connection.query(
                        "select last_seen_at from enclave.sessions where user_id = $1 and revoked_at is null",
                        [fixture.member]
                    ).first?.decode(Date.self, "last_seen_at"))
            }
            // Fourteen idle minutes, then a request: the session lives on, seen now.
            try await fixture.superuser(
                "update enclave.sessions set last_seen_at = now() - interval '14 minutes' where user_id = $1",
                [fixture.member])
            _ = try await fixture.identity.me(fixture.memberToken)
            #expect(try await lastSeen() > Date().addingTimeInterval(-60))
            // Seen five seconds ago: further requests read the row without writing it.
            try await fixture.superuser(
                "update enclave.sessions set last_seen_at = now() - interval '5 seconds' where user_id = $1",
                [fixture.member])
            let before = try await lastSeen()
            _ = try await fixture.identity.me(fixture.memberToken)
            _ = try await fixture.access.withPractice(
                fixture.memberToken, practice: fixture.practiceA, scope: .leadsRead
            ) { _ in true }
            #expect(try await lastSeen() == before)
            // Sixteen idle minutes: the same token is refused.
            try await fixture.superuser(
                "update enclave.sessions set last_seen_at = now() - interval '16 minutes' where user_id = $1",
                [fixture.member])
            await #expect(throws: AccessError(.unauthenticated, "sign in again: the session is not valid")) {
                _ = try await fixture.identity.me(fixture.memberToken)
            }
        }
    }

    @Test("approving a BAA needs a fresh re-authentication")
    func approvalNeedsReauthentication() async throws {
        try await IdentityFixture.with { fixture in
            let proposal = try await fixture.agreements.propose(
                fixture.adminToken, agency: fixture.agency, practice: fixture.practiceA, scopes: [.leadsExport],
                effectiveAt: Date(), expiresAt: Date().addingTimeInterval(86_400), documentSHA256: SHA256.hash([1]))
            // A fresh sign-in with MFA but no re-authentication in the last five minutes.
            let owner = try await fixture.identity.login(email: "owner@a.test", password: IdentityFixture.password)
            try await fixture.identity.verifyMFA(
                owner.token, code: try await IdentityFixture.code(fixture.keys, "owner@a.test", step: 2),
                at: IdentityFixture.start.addingTimeInterval(60))
            try await fixture.superuser(
                "update enclave.sessions set authenticated_at = now() - interval '6 minutes' where user_id = $1",
                [fixture.ownerA])
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await fixture.agreements.approve(owner.token, agreement: proposal)
            }
            #expect(
                try await fixture.agreements.list(fixture.adminToken).first { $0.id == proposal }?.status == "proposed")
            let fresh = try await fixture.identity.reauthenticate(
                owner.token, password: IdentityFixture.password,
                code: try await IdentityFixture.code(fixture.keys, "owner@a.test", step: 3),
                at: IdentityFixture.start.addingTimeInterval(90))
            try await fixture.agreements.approve(fresh, agreement: proposal)
            #expect(
                try await fixture.agreements.list(fixture.adminToken).first { $0.id == proposal }?.status == "active")
            // The old token stopped working when re-authentication issued a new one.
            await #expect(throws: AccessError(.unauthenticated, "sign in again: the session is not valid")) {
                try await fixture.identity.sessions(owner.token)
            }
        }
    }

    @Test("an agency admin cannot approve their own proposal, even as an owner of the practice; nor can a stranger")
    func selfApproval() async throws {
        try await IdentityFixture.with { fixture in
            try await fixture.directory.grant(user: fixture.admin, role: .practiceOwner, practice: fixture.practiceB)
            let proposal = try await fixture.agreements.propose(
                fixture.adminToken, agency: fixture.agency, practice: fixture.practiceB, scopes: [.leadsRead],
                effectiveAt: Date(), expiresAt: nil, documentSHA256: SHA256.hash([2]))
            let fresh = try await fixture.identity.reauthenticate(
                fixture.adminToken, password: IdentityFixture.password,
                code: try await IdentityFixture.code(fixture.keys, "admin@agency.test", step: 2),
                at: IdentityFixture.start.addingTimeInterval(60))
            await #expect {
                try await fixture.agreements.approve(fresh, agreement: proposal)
            } throws: { error in
                (error as? AccessError)?.code == .forbidden && "\(error)".contains("proposer")
            }
            // The owner of practice A is not an owner of B.
            await #expect(throws: AccessError(.forbidden, "only an owner of the practice may decide on this agreement"))
            {
                try await fixture.agreements.approve(fixture.ownerAToken, agreement: proposal)
            }
            // A member cannot propose.
            await #expect(throws: AccessError(.forbidden, "only an admin of the agency may propose an agreement")) {
                try await fixture.agreements.propose(
                    fixture.memberToken, agency: fixture.agency, practice: fixture.practiceB, scopes: [.leadsRead],
                    effectiveAt: Date(), expiresAt: nil, documentSHA256: SHA256.hash([3]))
            }
            // Every state change is kept.
            let events = try await fixture.keys.database.connect()
            defer { Task { await events.close() } }
            let history = try await events.query(
                "select to_status from enclave.baa_events where baa_id = $1 order by id", [fixture.baa]
            ).map { try $0.decode(String.self, "to_status") }
            #expect(history == ["proposed", "active"])
        }
    }

    @Test("a TOTP code is accepted once; a replay is refused")
    func totpReplay() async throws {
        try await IdentityFixture.with { fixture in
            let login = try await fixture.identity.login(
                email: "member@agency.test", password: IdentityFixture.password)
            let at = IdentityFixture.start.addingTimeInterval(60)
            let code = try await IdentityFixture.code(fixture.keys, "member@agency.test", step: 2)
            try await fixture.identity.verifyMFA(login.token, code: code, at: at)
            let again = try await fixture.identity.login(
                email: "member@agency.test", password: IdentityFixture.password)
            await #expect(throws: AccessError(.invalidCredentials, "wrong or already used code")) {
                try await fixture.identity.verifyMFA(again.token, code: code, at: at)
            }
            // The enrollment code (step 0) is older still: refused too.
            await #expect(throws: AccessError(.invalidCredentials, "wrong or already used code")) {
                try await fixture.identity.verifyMFA(
                    again.token, code: try await IdentityFixture.code(fixture.keys, "member@agency.test", step: 0),
                    at: at)
            }
            await #expect(throws: AccessError(.invalidCredentials, "wrong or already used code")) {
                try await fixture.identity.verifyMFA(again.token, code: "000000", at: at)
            }
        }
    }

    @Test("the sixth wrong password is refused even with the right password, and the answer does not reveal the email")
    func throttling() async throws {
        try await IdentityFixture.with { fixture in
            func attempt(_ email: String, _ password: String, from address: String) async -> AccessError? {
                do {
                    _ = try await fixture.identity.login(
                        email: email, password: password, client: ClientInfo(address: address))
                    return nil
                } catch {
                    return error as? AccessError
                }
            }
            var answers: [String: [String]] = [:]
            for (email, address) in [("owner@b.test", "192.0.2.10"), ("nobody@nowhere.test", "192.0.2.11")] {
                for _ in 0..<5 {
                    let refusal = await attempt(email, "wrong password!!", from: address)
                    answers[email, default: []].append(
                        "\(refusal?.code.description ?? "ok"): \(refusal?.message ?? "")")
                }
                let sixth = await attempt(email, IdentityFixture.password, from: address)
                answers[email, default: []].append("\(sixth?.code.description ?? "ok"): \(sixth?.message ?? "")")
                #expect(sixth?.code == .throttled)
                #expect(sixth?.retryAfter != nil)
            }
            #expect(answers["owner@b.test"] == answers["nobody@nowhere.test"])
            #expect(answers["owner@b.test"]?.first == "invalidCredentials: wrong email or password")
            // Other accounts are unaffected.
            #expect(await attempt("owner@a.test", IdentityFixture.password, from: "192.0.2.12") == nil)
            // Per address: twenty failures across accounts lock the address.
            for index in 0..<20 { _ = await attempt("spray\(index)@x.test", "nope nope nope", from: "198.51.100.7") }
            #expect(await attempt("owner@a.test", IdentityFixture.password, from: "198.51.100.7")?.code == .throttled)
        }
    }

    @Test("changing the password ends every session; logout ends one")
    func passwordChangeAndLogout() async throws {
        try await IdentityFixture.with { fixture in
            let second = try await fixture.identity.login(
                email: "member@agency.test", password: IdentityFixture.password)
            let fresh = try await fixture.identity.reauthenticate(
                fixture.memberToken, password: IdentityFixture.password,
                code: try await IdentityFixture.code(fixture.keys, "member@agency.test", step: 1),
                at: IdentityFixture.start.addingTimeInterval(30))
            await #expect(throws: AccessError(.invalidInput, "a password has at least 12 characters")) {
                try await fixture.identity.changePassword(fresh, current: IdentityFixture.password, new: "short")
            }
            try await fixture.identity.changePassword(
                fresh, current: IdentityFixture.password, new: "a much better passphrase")
            for token in [fresh, second.token] {
                await #expect(throws: AccessError(.unauthenticated, "sign in again: the session is not valid")) {
                    try await fixture.identity.sessions(token)
                }
            }
            await #expect(throws: AccessError(.invalidCredentials, "wrong email or password")) {
                try await fixture.identity.login(email: "member@agency.test", password: IdentityFixture.password)
            }
            let again = try await fixture.identity.login(
                email: "member@agency.test", password: "a much better passphrase")
            try await fixture.identity.logout(again.token)
            await #expect(throws: AccessError(.unauthenticated, "sign in again: the session is not valid")) {
                try await fixture.identity.sessions(again.token)
            }
        }
    }

    @Test("session tokens are stored only as SHA-256 hashes")
    func tokensHashed() async throws {
        try await IdentityFixture.with { fixture in
            let connection = try await fixture.keys.database.connect()
            defer { Task { await connection.close() } }
            let dump =
                try await connection.query("select string_agg(s::text, '|') as all_rows from enclave.sessions s")
                .first?.decode(String.self, "all_rows") ?? ""
            #expect(!dump.contains(fixture.memberToken.value))
            let hash = SHA256.hexDigest(Array(fixture.memberToken.value.utf8))
            #expect(dump.contains(hash))
            #expect(fixture.memberToken.value.count >= 43)
        }
    }

    @Test("agency users list only the practices they can reach now")
    func reachablePractices() async throws {
        try await IdentityFixture.with { fixture in
            let reachable = try await fixture.agreements.reachablePractices(fixture.memberToken)
            #expect(reachable.map(\.id) == [fixture.practiceA])
            #expect(reachable.first?.via == "agreement")
            #expect(try await fixture.agreements.reachablePractices(fixture.ownerAToken).map(\.via) == ["membership"])
        }
    }
}
