import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// Issue 13's attacks, each tried the way an attacker with an SQL injection in the service
/// would: raw SQL as `enclave_app`, with whatever credential it can get. Each test fails if its
/// attack works again.
@Suite("Security regressions: what an SQL injection in the service cannot do")
struct SecurityRegressionTests {
    /// A raw connection as the service role, with `settings` bound for one transaction.
    func asService<T: Sendable>(
        _ fixture: IdentityFixture, _ settings: [String: String],
        _ body: (Transaction) async throws -> T
    ) async throws -> T {
        let app = try await fixture.keys.database.connect(DatabaseRole.app.variable)
        defer { Task { await app.close() } }
        return try await app.withTransaction { transaction in
            for (name, value) in settings.sorted(by: { $0.key < $1.key }) {
                try await transaction.query("select set_config($1, $2, true)", [name, value])
            }
            return try await body(transaction)
        }
    }

    /// Runs `sql` as the service role; returns the SQLSTATE it failed with, or nil.
    func refusal(
        _ fixture: IdentityFixture, _ settings: [String: String], _ sql: String,
        _ bindings: [any PostgresEncodable] = []
    ) async throws -> String? {
        do {
            // Marked as a test's statement: scripts/check-distribution checks only the service's.
            _ = try await asService(fixture, settings) {
                try await $0.query(sql + " /* test: attack probe */", bindings)
            }
            return nil
        } catch let error as PostgresError where error.code == .server {
            return error.sqlState
        }
    }

    /// A session from the member's correct password, without a TOTP code.
    func passwordOnly(_ fixture: IdentityFixture, email: String = "member@agency.test") async throws -> SessionToken {
        try await fixture.identity.login(email: email, password: IdentityFixture.password).token
    }

    @Test("the service role cannot mark a session MFA-verified or re-authenticated, nor read TOTP secrets")
    func mfaCannotBeAsserted() async throws {
        try await IdentityFixture.with { fixture in
            let token = try await passwordOnly(fixture)
            let bound = ["enclave.session_token": token.value, "enclave.tenant_id": fixture.practiceA.uuidString]
            for sql in [
                "select enclave_private.complete_mfa(99999999999, false)",
                "select enclave_private.complete_mfa(99999999999, true)",
                "select enclave_private.reauthenticate('\\x00'::bytea, 99999999999, repeat('x', 64))",
                "select * from enclave_private.mfa_secret(false)",
                "select enclave_private.reauth_parameters()",
            ] {
                #expect(try await refusal(fixture, bound, sql) == "42501", "\(sql)")
            }
            // The session still reaches nothing: the API would not serve the practice's leads.
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code before opening practice data")) {
                try await fixture.serviceCount(token, practice: fixture.practiceA)
            }
            // The authentication role executes its four functions and nothing else.
            let catalog = try await fixture.keys.database.connect()
            defer { Task { await catalog.close() } }
            let granted = try await catalog.query(
                """
                select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname in ('enclave', 'enclave_private') and has_function_privilege('enclave_auth', p.oid, 'EXECUTE')
                order by 1
                """
            ).map { try $0.decode(String.self, "proname") }
            #expect(granted == ["complete_mfa", "mfa_secret", "reauth_parameters", "reauthenticate"])
            let appCanAuthenticate = try await catalog.query(
                "select pg_has_role('enclave_app', 'enclave_auth', 'member') as member"
            ).first?.decode(Bool.self, "member")
            #expect(appCanAuthenticate == false)
        }
    }

    @Test("a session without MFA can only complete MFA or sign out; signing in is not a re-authentication")
    func passwordOnlySessions() async throws {
        try await IdentityFixture.with { fixture in
            let member = try await passwordOnly(fixture)
            let admin = try await passwordOnly(fixture, email: "admin@agency.test")
            let owner = try await passwordOnly(fixture, email: "owner@a.test")
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code first")) {
                try await fixture.agreements.propose(
                    admin, agency: fixture.agency, practice: fixture.practiceB, scopes: [.leadsRead],
                    effectiveAt: Date(), expiresAt: nil, documentSHA256: SHA256.hash([9]))
            }
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code first")) {
                try await fixture.agreements.assign(
                    admin, agency: fixture.agency, practice: fixture.practiceB, member: fixture.member)
            }
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code first")) {
                try await fixture.agreements.revoke(owner, agreement: fixture.baa)
            }
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code first")) {
                try await AuditLog(identity: fixture.identity).practiceEvents(owner, practice: fixture.practiceA)
            }
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code first")) {
                try await AuditLog(identity: fixture.identity).disclosures(owner, practice: fixture.practiceA)
            }
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code first")) {
                try await fixture.identity.sessions(member)
            }
            // A password alone cannot enroll a new authenticator for a user who has one.
            await #expect(throws: AccessError(.mfaRequired, "verify a one-time code first")) {
                try await fixture.identity.beginMFAEnrollment(member)
            }
            // Signing out works.
            try await fixture.identity.logout(member)

            // With MFA but no re-authentication since signing in, sensitive actions are refused.
            let signedIn = try await fixture.identity.login(
                email: "admin@agency.test", password: IdentityFixture.password)
            try await fixture.identity.verifyMFA(
                signedIn.token, code: try await IdentityFixture.code(fixture.keys, "admin@agency.test", step: 2),
                at: IdentityFixture.start.addingTimeInterval(60))
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await fixture.agreements.propose(
                    signedIn.token, agency: fixture.agency, practice: fixture.practiceB, scopes: [.leadsRead],
                    effectiveAt: Date(), expiresAt: nil, documentSHA256: SHA256.hash([9]))
            }
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await fixture.agreements.assign(
                    signedIn.token, agency: fixture.agency, practice: fixture.practiceB, member: fixture.member)
            }
            let ownerSignedIn = try await fixture.identity.login(
                email: "owner@a.test", password: IdentityFixture.password)
            try await fixture.identity.verifyMFA(
                ownerSignedIn.token, code: try await IdentityFixture.code(fixture.keys, "owner@a.test", step: 2),
                at: IdentityFixture.start.addingTimeInterval(60))
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await fixture.services.sources.create(
                    ownerSignedIn.token, practice: fixture.practiceA, kind: "call", label: "Injected")
            }
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await fixture.agreements.revoke(ownerSignedIn.token, agreement: fixture.baa)
            }
        }
    }

    @Test("an ingest credential bound through SQL inserts its own leads and reads or changes nothing else")
    func ingestCredentialLeastPrivilege() async throws {
        try await IdentityFixture.with { fixture in
            let (source, secret) = try await fixture.services.sources.create(
                fixture.ownerAToken, practice: fixture.practiceA, kind: "call", label: "Provider line")
            let ingest = [
                "enclave.ingest_source": source.id.uuidString, "enclave.ingest_secret": secret,
                "enclave.tenant_id": fixture.practiceA.uuidString,
            ]
            for table in ["tenant_keys", "tracking_sources", "webhook_endpoints", "outbox", "ingest_replays", "leads"] {
                let rows = try await asService(fixture, ingest) { transaction in
                    try await visibleRows(
                        transaction.connection,
                        "select count(*)::int8 as n from enclave.\(table) /* test: isolation probe */")
                }
                #expect(rows == 0, "an ingest credential reads \(table)")
            }
            let practice = fixture.practiceA.uuidString
            for sql in [
                "insert into enclave.tenant_keys (tenant_id, purpose, version, kek_version, wrapped, state) values ('\(practice)', 'data', 99, 1, '\\x00', 'active')",
                "update enclave.tenant_keys set state = 'retired'",
                "insert into enclave.tracking_sources (tenant_id, kind, label) values ('\(practice)', 'call', 'x')",
                "update enclave.tracking_sources set label = 'x'",
                "insert into enclave.webhook_endpoints (tenant_id, id, url, baa_covered, signing_secret) values ('\(practice)', gen_random_uuid(), 'https://evil.test', true, '\\x00')",
                "insert into enclave.outbox (tenant_id, kind, payload) values ('\(practice)', 'notification', '{}')",
                "insert into enclave.ingest_replays (tenant_id, source_id, signature_hash) values ('\(practice)', '\(source.id)', '\\x00')",
                "update enclave.leads set disposition = 'x'",
                "delete from enclave.leads",
                // Another source's leads, even of the same practice.
                "insert into enclave.leads (tenant_id, source_id, kind, occurred_at) select '\(practice)', gen_random_uuid(), 'call', now()",
            ] {
                #expect(try await refusal(fixture, ingest, sql) == "42501", "\(sql)")
            }
            // What it may do: insert a lead of its own source.
            #expect(
                try await refusal(
                    fixture, ingest,
                    "insert into enclave.leads (tenant_id, source_id, kind, occurred_at) values ('\(practice)', '\(source.id)', 'call', now())"
                ) == nil)
        }
    }

    @Test("an agency member's session reads the practice but cannot update or delete its rows through SQL")
    func agencyMembersRead() async throws {
        try await IdentityFixture.with { fixture in
            let member = [
                "enclave.session_token": fixture.memberToken.value, "enclave.tenant_id": fixture.practiceA.uuidString,
            ]
            let rows = try await asService(fixture, member) { transaction in
                try await transaction.query("select count(*)::int8 as n from enclave.leads /* test: member probe */")
                    .first?.decode(Int.self, "n")
            }
            #expect(rows == 1)
            for sql in [
                "update enclave.leads set disposition = 'x'", "delete from enclave.leads",
                "delete from enclave.recordings", "update enclave.tracking_sources set label = 'x'",
                "delete from enclave.tracking_sources", "update enclave.tenant_keys set state = 'retired'",
                "insert into enclave.tracking_sources (tenant_id, kind, label) values ('\(fixture.practiceA)', 'call', 'x')",
            ] {
                #expect(try await refusal(fixture, member, sql) == "42501", "\(sql)")
            }
        }
    }

    @Test("a refusal the service records is a fixed reason code with at most a scope, nothing else")
    func boundedRefusals() async throws {
        try await IdentityFixture.with { fixture in
            let token = try await passwordOnly(fixture)
            let bound = ["enclave.session_token": token.value, "enclave.tenant_id": fixture.practiceB.uuidString]
            let practice = fixture.practiceB.uuidString.lowercased()
            func record(_ reason: String, _ details: String, objectID: String? = nil) async throws -> String? {
                try await refusal(
                    fixture, bound,
                    "select enclave_private.record_audit($1::text::uuid, 'access.denied', 'practice', $2, 'denied', $3, $4::text::jsonb, null, null, null)",
                    [practice, objectID ?? practice, reason, details])
            }
            #expect(try await record("forbidden", #"{"scope": "leads.read"}"#) == nil)
            #expect(try await record("mfaRequired", "{}") == nil)
            #expect(try await record("the practice owner said yes, honest", "{}") == "22023")
            #expect(try await record("forbidden", #"{"scope": "\#(String(repeating: "x", count: 4096))"}"#) == "22023")
            #expect(try await record("forbidden", #"{"scope": "leads.read", "note": "call 555-0100"}"#) == "22023")
            #expect(try await record("forbidden", #"{"scope": 7}"#) == "22023")
            #expect(try await record("forbidden", "{}", objectID: UUID().uuidString) == "22023")
            // Nor another outcome of any action than access.denied.
            #expect(
                try await refusal(
                    fixture, bound,
                    "select enclave_private.record_audit($1::text::uuid, 'phi.read', 'lead', 'x', 'denied', 'anything', '{}', null, null, null)",
                    [practice]) != nil)
        }
    }

    /// The argument to try for a parameter of `type`: a practice's id for every uuid, `flag` for
    /// every boolean, a far-future TOTP step for every bigint.
    static func argument(_ type: String, uuid: String, flag: Bool) -> String? {
        switch type {
        case "uuid": uuid
        case "text": "leads.read"
        case "text[]": "{leads.read,recordings.listen}"
        case "uuid[]": "{\(uuid)}"
        case "bytea[]": "{\"\\\\x" + String(repeating: "00", count: 16) + "\"}"
        case "boolean": flag ? "true" : "false"
        case "bytea": "\\x" + String(repeating: "00", count: 32)
        case "bigint", "integer": "99999999999".prefix(type == "integer" ? 4 : 11).description
        case "timestamp with time zone": "2020-01-01T00:00:00Z"
        case "date": "2026-11-01"
        case "interval": "10 minutes"
        case "inet": "127.0.0.1"
        case "jsonb": "{}"
        default: nil
        }
    }

    @Test(
        "every function the service role may execute, called with a password-only session and another practice's ids, reaches and changes nothing"
    )
    func functionSweep() async throws {
        try await IdentityFixture.with { fixture in
            let superuser = try await fixture.keys.database.connect()
            defer { Task { await superuser.close() } }
            let functions = try await superuser.query(
                """
                select p.oid::regprocedure::text as signature, n.nspname || '.' || p.proname as name, p.proretset as set,
                       array(select format_type(t, null) from unnest(p.proargtypes) t)::text[] as types
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname in ('enclave', 'enclave_private') and has_function_privilege('enclave_app', p.oid, 'EXECUTE')
                order by 1
                """
            ).map {
                (
                    signature: try $0.decode(String.self, "signature"), name: try $0.decode(String.self, "name"),
                    types: try $0.decode([String].self, "types")
                )
            }
            #expect(functions.count >= 30)
            // Every id of the two practices, and what would show they were reached.
            let ids = try await superuser.query(
                """
                select id::text as id from enclave.practices
                union all select id::text from enclave.leads union all select id::text from enclave.tracking_sources
                union all select id::text from enclave.baas union all select user_id::text from enclave.memberships
                    where practice_id is not null
                """
            ).map { try $0.decode(String.self, "id") }
            // Both practices: B, which the member never reaches, and A, which it reaches only
            // after MFA.
            let snapshot = """
                select md5(string_agg(x, '|' order by x)) as digest from (
                    select 'lead:' || l::text as x from enclave.leads l
                    union all select 'recording:' || r.tenant_id || r.lead_id || r.chunk_index || r.ciphertext::text from enclave.recordings r
                    union all select 'source:' || s::text from enclave.tracking_sources s
                    union all select 'key:' || k::text from enclave.tenant_keys k
                    union all select 'endpoint:' || w::text from enclave.webhook_endpoints w
                    union all select 'outbox:' || o::text from enclave.outbox o
                    union all select 'replay:' || i::text from enclave.ingest_replays i
                    union all select 'fetch:' || f::text from enclave.recording_fetches f
                    union all select 'visitor:' || v::text from enclave.visitor_sessions v
                    union all select 'spend:' || a::text from enclave.ad_spend a
                    union all select 'number:' || n::text from enclave_private.number_directory n
                    union all select 'property:' || p::text from enclave_private.web_properties p
                    union all select 'baa:' || b::text from enclave.baas b
                    union all select 'baa_event:' || e::text from enclave.baa_events e
                    union all select 'assignment:' || a::text from enclave.agency_assignments a
                    union all select 'membership:' || m::text from enclave.memberships m
                    union all select 'practice:' || p::text from enclave.practices p
                    union all select 'credential:' || c::text from enclave_private.ingest_credentials c
                    union all select 'glass:' || g::text from enclave.break_glass g
                    union all select 'hold:' || h::text from enclave.legal_holds h
                    union all select 'retention:' || r::text from enclave.practice_compliance r
                    union all select 'alert:' || a::text from enclave.alerts a
                    union all select 'responder:' || r::text from enclave.platform_responders r
                    union all select 'user:' || u.id || coalesce(u.totp_secret::text, '') || coalesce(u.totp_pending_secret::text, '')
                        || coalesce(u.mfa_enrolled_at::text, '') || coalesce(u.disabled_at::text, '') from enclave.users u
                    union all select 'session:' || s.id || coalesce(s.mfa_verified_at::text, '') || coalesce(s.authenticated_at::text, '')
                        || coalesce(s.revoked_at::text, '') || s.token_hash::text from enclave.sessions s
                    union all select 'audit:' || a.tenant_id || a.seq from enclave.audit_events a
                        where a.outcome = 'ok' and a.tenant_id <> '00000000-0000-0000-0000-000000000000'
                ) t
                """
            let token = try await passwordOnly(fixture)
            var before = try await superuser.query(snapshot).first?.decode(String.self, "digest")
            // Functions that answer anyone by design, and why.
            let answersAnyone: [String: String] = [
                // Before a request's signature is checked: the source's practice and its secret,
                // wrapped by the master key, which never enters the database.
                "enclave_private.ingest_source": "pre-authentication lookup of a signing secret",
                // The caller's own session (the password-only session's, here).
                "enclave_private.current_session": "the caller's own session",
                "enclave_private.touch_session": "the caller's own session",
            ]
            // The caller's own session ends: signing out is what a password-only session may do.
            let ownSessionOnly: Set<String> = ["enclave_private.logout"]
            let app = try await fixture.keys.database.connect(DatabaseRole.app.variable)
            defer { Task { await app.close() } }
            var calls = 0
            for function in functions where !ownSessionOnly.contains(function.name) {
                for practice in [fixture.practiceA, fixture.practiceB] {
                    let practiceIDs = try await superuser.query(
                        """
                        select id::text as id from enclave.leads where tenant_id = $1
                        union all select id::text from enclave.tracking_sources where tenant_id = $1
                        union all select id::text from enclave.baas where practice_id = $1
                        union all select user_id::text from enclave.memberships where practice_id = $1
                        """, [practice]
                    ).map { try $0.decode(String.self, "id") }
                    let flags = function.types.contains("boolean") ? [true, false] : [true]
                    for id in [practice.uuidString.lowercased()] + practiceIDs {
                        for flag in flags {
                            let arguments = function.types.map { Self.argument($0, uuid: id, flag: flag) }
                            guard arguments.allSatisfy({ $0 != nil }) else {
                                Issue.record("\(function.signature): a parameter type the sweep cannot fill")
                                continue
                            }
                            let placeholders = function.types.enumerated().map {
                                "$\($0.offset + 1)::text::\($0.element)"
                            }
                            let sql =
                                "select t::text as result from \(function.name)(\(placeholders.joined(separator: ", "))) t"
                            let settings = [
                                "enclave.session_token": token.value, "enclave.tenant_id": practice.uuidString,
                            ]
                            calls += 1
                            let result: [String]
                            do {
                                result = try await app.withTransaction { transaction in
                                    for (name, value) in settings.sorted(by: { $0.key < $1.key }) {
                                        try await transaction.query("select set_config($1, $2, true)", [name, value])
                                    }
                                    return try await transaction.query(sql, arguments.map { $0! }).map {
                                        try $0.decode(String?.self, "result") ?? ""
                                    }
                                }
                            } catch is PostgresError {
                                continue
                            }
                            guard answersAnyone[function.name] == nil else { continue }
                            let leaked = ids.filter { id in result.contains { $0.contains(id) } }
                            #expect(
                                leaked.isEmpty, "\(function.signature) answered with \(leaked.count) ids of a practice")
                        }
                    }
                }
                let after = try await superuser.query(snapshot).first?.decode(String.self, "digest")
                #expect(before == after, "\(function.signature) changed a practice's data, access or identity")
                before = after
            }
            #expect(calls > 100)
        }
    }
}
