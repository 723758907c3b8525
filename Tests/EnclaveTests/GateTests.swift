import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

@Suite("The BAA gate, enforced by PostgreSQL")
struct GateTests {
    /// The member reads practice A, through the service and through raw SQL, and writes nothing
    /// directly: agency members read; leads arrive only through ingest credentials.
    func expectAccess(_ fixture: IdentityFixture) async throws {
        #expect(try await fixture.serviceCount(fixture.memberToken, practice: fixture.practiceA) == 1)
        let raw = try await fixture.rawAccess(fixture.memberToken, practice: fixture.practiceA)
        #expect(raw.rows == 1)
        #expect(!raw.inserted)
    }

    /// The member sees zero rows of practice A and cannot write, whichever way it asks.
    func expectNoAccess(_ fixture: IdentityFixture, token: SessionToken? = nil, refusal: AccessError) async throws {
        let token = token ?? fixture.memberToken
        await #expect(throws: refusal) {
            try await fixture.serviceCount(token, practice: fixture.practiceA)
        }
        let raw = try await fixture.rawAccess(token, practice: fixture.practiceA)
        #expect(raw.rows == 0)
        #expect(!raw.inserted)
    }

    @Test("an assigned agency member under an active BAA reads the practice's rows and writes none directly")
    func baseline() async throws {
        try await IdentityFixture.with { try await expectAccess($0) }
    }

    @Test("after the BAA is revoked: zero rows, no writes")
    func revoked() async throws {
        try await IdentityFixture.with { fixture in
            try await expectAccess(fixture)
            try await fixture.agreements.revoke(fixture.ownerAToken, agreement: fixture.baa)
            try await expectNoAccess(fixture, refusal: .noAccess)
        }
    }

    @Test("after the BAA expires: zero rows, no writes")
    func expired() async throws {
        try await IdentityFixture.with { fixture in
            try await expectAccess(fixture)
            try await fixture.superuser(
                "update enclave.baas set effective_at = now() - interval '2 days', expires_at = now() - interval '1 second' where id = $1",
                [fixture.baa])
            try await expectNoAccess(fixture, refusal: .noAccess)
            #expect(try await fixture.agreements.list(fixture.ownerAToken).first?.inForce == false)
            // The sweep records the expiry once, in the practice's chain.
            #expect(try await fixture.directory.recordExpiredAgreements() == 1)
            #expect(try await fixture.directory.recordExpiredAgreements() == 0)
            let expired = try await AuditLog(identity: fixture.identity).practiceEvents(
                fixture.ownerAToken, practice: fixture.practiceA, filter: .init(action: .baaExpired))
            #expect(expired.count == 1)
            #expect(expired.first?.objectID == fixture.baa.uuidString.lowercased())
        }
    }

    @Test("after the assignment is removed: zero rows, no writes")
    func unassigned() async throws {
        try await IdentityFixture.with { fixture in
            try await expectAccess(fixture)
            try await fixture.agreements.unassign(
                fixture.adminToken, agency: fixture.agency, practice: fixture.practiceA, member: fixture.member)
            try await expectNoAccess(fixture, refusal: .noAccess)
        }
    }

    @Test("after the session is idle past the timeout: zero rows, no writes")
    func idle() async throws {
        try await IdentityFixture.with { fixture in
            try await expectAccess(fixture)
            try await fixture.superuser(
                "update enclave.sessions set last_seen_at = now() - interval '16 minutes' where user_id = $1",
                [fixture.member])
            try await expectNoAccess(fixture, refusal: .sessionInvalid)
        }
    }

    @Test("after the session passes its absolute timeout: zero rows, no writes")
    func absolute() async throws {
        try await IdentityFixture.with { fixture in
            try await expectAccess(fixture)
            try await fixture.superuser(
                "update enclave.sessions set created_at = now() - interval '12 hours 1 minute' where user_id = $1",
                [fixture.member])
            try await expectNoAccess(fixture, refusal: .sessionInvalid)
        }
    }

    @Test("after the session is revoked: zero rows, no writes")
    func sessionRevoked() async throws {
        try await IdentityFixture.with { fixture in
            try await expectAccess(fixture)
            let other = try await fixture.identity.login(
                email: "member@agency.test", password: IdentityFixture.password)
            // Listing and revoking sessions needs MFA done in the session that asks.
            try await fixture.identity.verifyMFA(
                other.token, code: try await IdentityFixture.code(fixture.keys, "member@agency.test", step: 1),
                at: IdentityFixture.start.addingTimeInterval(30))
            let sessions = try await fixture.identity.sessions(other.token)
            #expect(sessions.count == 2)
            let target = try #require(sessions.first { !$0.current })
            try await fixture.identity.revokeSession(other.token, sessionID: target.id)
            try await expectNoAccess(fixture, refusal: .sessionInvalid)
        }
    }

    @Test("after the user is disabled: zero rows, no writes, no sign-in")
    func disabled() async throws {
        try await IdentityFixture.with { fixture in
            try await expectAccess(fixture)
            try await fixture.directory.disable(user: fixture.member)
            try await expectNoAccess(fixture, refusal: .sessionInvalid)
            await #expect(throws: AccessError(.invalidCredentials, "wrong email or password")) {
                try await fixture.identity.login(email: "member@agency.test", password: IdentityFixture.password)
            }
        }
    }

    @Test("a BAA for practice A gives nothing of practice B, even with GUCs set by hand")
    func otherPractice() async throws {
        try await IdentityFixture.with { fixture in
            await #expect(throws: AccessError(.forbidden, "you do not have access to this practice's data")) {
                try await fixture.serviceCount(fixture.memberToken, practice: fixture.practiceB)
            }
            let app = try await fixture.keys.database.connect(DatabaseRole.app.variable)
            defer { Task { await app.close() } }
            let tables = try await app.query(
                "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'enclave' and c.relkind = 'r' and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id')"
            ).map { try $0.decode(String.self, "relname") }
            #expect(tables.count == 14)
            for settings in [
                ["enclave.tenant_id": fixture.practiceB.uuidString],
                [
                    "enclave.tenant_id": fixture.practiceB.uuidString,
                    "enclave.maint_tenant": fixture.practiceB.uuidString,
                ],
                [
                    "enclave.tenant_id": fixture.practiceA.uuidString,
                    "enclave.maint_tenant": fixture.practiceB.uuidString,
                ],
            ] {
                try await app.query(
                    "select set_config('enclave.session_token', $1, false)", [fixture.memberToken.value])
                for (name, value) in settings {
                    try await app.query("select set_config($1, $2, false)", [name, value])
                }
                for table in tables {
                    let rows = try await visibleRows(
                        app, "select count(*)::int8 as n from enclave.\(table) where tenant_id = $1",
                        [fixture.practiceB])
                    #expect(rows == 0, "\(table) of B visible")
                }
                await #expect(throws: PostgresError.self) {
                    try await app.query(
                        "insert into enclave.tracking_sources (tenant_id, kind, label) values ($1, 'call', 'x')",
                        [fixture.practiceB])
                }
                // The service role may not update leads at all now; before, row security kept it
                // to zero rows. Either way nothing of B changes.
                let updated = try await visibleRows(
                    app,
                    "with changed as (update enclave.leads set disposition = 'x' where tenant_id = $1 returning 1) select count(*)::int8 as n from changed",
                    [fixture.practiceB])
                #expect(updated == 0)
            }
        }
    }

    @Test("raw SQL with a forged, expired or random token sees nothing")
    func forgedTokens() async throws {
        try await IdentityFixture.with { fixture in
            let random = try SessionToken.generate()
            let hashOfReal = SessionToken(SHA256.hexDigest(Array(fixture.memberToken.value.utf8)))
            let truncated = SessionToken(String(fixture.memberToken.value.dropLast()))
            for token in [random, hashOfReal, truncated, SessionToken(""), SessionToken("' or true --")] {
                let raw = try await fixture.rawAccess(token, practice: fixture.practiceA)
                #expect(raw.rows == 0)
                #expect(!raw.inserted)
            }
            try await fixture.superuser(
                "update enclave.sessions set created_at = now() - interval '13 hours' where user_id = $1",
                [fixture.member])
            #expect(try await fixture.rawAccess(fixture.memberToken, practice: fixture.practiceA).rows == 0)
        }
    }

    @Test("a BAA without recordings.listen lets leads be read but not recordings")
    func scopes() async throws {
        try await IdentityFixture.with(scopes: [.leadsRead]) { fixture in
            #expect(try await fixture.serviceCount(fixture.memberToken, practice: fixture.practiceA) == 1)
            #expect(
                try await fixture.rawAccess(fixture.memberToken, practice: fixture.practiceA, table: "recordings").rows
                    == 0)
            await #expect(throws: AccessError(.forbidden, "you do not have access to this practice's data")) {
                try await fixture.serviceCount(
                    fixture.memberToken, practice: fixture.practiceA, table: "recordings", scope: .recordingsListen)
            }
            // The practice's own owner reads its recordings.
            let ownerRecordings = try await fixture.access.withPractice(
                fixture.ownerAToken, practice: fixture.practiceA, scope: .recordingsListen
            ) {
                try await $0.query("select count(*)::int8 as n from enclave.recordings").first?.decode(Int.self, "n")
            }
            #expect(ownerRecordings == 1)
        }
    }

    @Test("a session without MFA reaches no HIPAA-mode practice")
    func mfaRequired() async throws {
        try await IdentityFixture.with { fixture in
            let login = try await fixture.identity.login(
                email: "member@agency.test", password: IdentityFixture.password)
            #expect(login.mfaEnrolled)
            try await expectNoAccess(fixture, token: login.token, refusal: .mfaFirst)
            try await fixture.identity.verifyMFA(
                login.token, code: try await IdentityFixture.code(fixture.keys, "member@agency.test", step: 2),
                at: IdentityFixture.start.addingTimeInterval(60))
            #expect(try await fixture.serviceCount(login.token, practice: fixture.practiceA) == 1)
        }
    }

    @Test("EXPLAIN shows the gate once per statement (InitPlan) and an index scan on tenant_id")
    func plan() async throws {
        try await IdentityFixture.with { fixture in
            // Enough rows that the planner prefers the index, as in production.
            try await fixture.superuser(
                """
                insert into enclave.leads (tenant_id, source_id, kind, occurred_at)
                select s.tenant_id, s.id, 'call', now() - (g * interval '1 minute')
                from enclave.tracking_sources s, generate_series(1, 5000) g
                """)
            try await fixture.superuser("analyze enclave.leads")
            // With and without an explicit tenant filter: the policy alone must give the index condition.
            for query in [
                "select id, occurred_at from enclave.leads where tenant_id = $1 order by occurred_at desc limit 50",
                "select id, occurred_at from enclave.leads order by tenant_id, occurred_at desc limit 50",
            ] {
                let plan = try await fixture.access.withPractice(
                    fixture.memberToken, practice: fixture.practiceA, scope: .leadsRead
                ) {
                    transaction in
                    try await transaction.query(
                        "explain (analyze, costs off) " + query, query.contains("$1") ? [fixture.practiceA] : []
                    ).map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
                }
                #expect(plan.contains("InitPlan 1 (returns $0)"), "\(plan)")
                #expect(plan.contains("Index Scan") || plan.contains("Index Only Scan"), "\(plan)")
                #expect(plan.contains("Index Cond: (tenant_id = "), "\(plan)")
                #expect(!plan.contains("Seq Scan"), "\(plan)")
            }
        }
    }
}

extension AccessError {
    /// The refusals the gate's tests expect, word for word.
    static let noAccess = AccessError(.forbidden, "you do not have access to this practice's data")
    static let sessionInvalid = AccessError(.unauthenticated, "sign in again: the session is not valid")
    static let mfaFirst = AccessError(.mfaRequired, "verify a one-time code before opening practice data")
}
