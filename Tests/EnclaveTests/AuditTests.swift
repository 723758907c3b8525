import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

@Suite("The audit trail")
struct AuditTests {
    /// A practice whose chain holds 10 events: its creation and nine key rotations.
    static func withChain<T: Sendable>(_ body: (KeyFixture, KeyManagement, UUID) async throws -> T) async throws -> T {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let practice = try await PracticeRegistry(keys: keys).create(name: "Audited Dental")
            for _ in 0..<9 { _ = try await keys.rotate(tenants: [practice]) }
            return try await body(fixture, keys, practice)
        }
    }

    /// Runs `sql` as the superuser with triggers off, as a tamperer would.
    static func tamper(_ fixture: KeyFixture, _ statements: [String], _ bindings: [any PostgresEncodable] = [])
        async throws
    {
        let connection = try await fixture.database.connect()
        defer { Task { await connection.close() } }
        try await connection.query("set session_replication_role = replica")
        for sql in statements { try await connection.query(sql, sql.contains("$1") ? bindings : []) }
    }

    func verify(_ keys: KeyManagement, checkpoint: Checkpoint? = nil) async throws -> [AuditVerifier.Break] {
        try await AuditVerifier(maintenance: keys.maintenance).verify(checkpoint: checkpoint).breaks
    }

    @Test("an intact chain verifies")
    func intact() async throws {
        try await Self.withChain { _, keys, practice in
            let report = try await AuditVerifier(maintenance: keys.maintenance).verify()
            #expect(report.breaks.isEmpty)
            #expect(report.events >= 10)
            let heads = try await AuditVerifier(maintenance: keys.maintenance).heads()
            #expect(heads.first { $0.chain == practice }?.seq == 10)
        }
    }

    @Test("a changed field is found, naming tenant and sequence")
    func editedField() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.tamper(
                fixture, ["update enclave.audit_events set object_id = '99' where tenant_id = $1 and seq = 4"],
                [practice])
            let broken = try #require(try await verify(keys).first)
            #expect(broken.chain == practice)
            #expect(broken.seq == 4)
            #expect(broken.problem.contains("edited"))
        }
    }

    @Test("a deleted event is found")
    func deletedEvent() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.tamper(
                fixture, ["delete from enclave.audit_events where tenant_id = $1 and seq = 6"], [practice])
            let broken = try #require(try await verify(keys).first)
            #expect((broken.chain, broken.seq) == (practice, 6))
            #expect(broken.problem.contains("missing"))
        }
    }

    @Test("two events swapped in order are found")
    func swapped() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.tamper(
                fixture,
                [
                    "update enclave.audit_events set seq = 100000 where tenant_id = $1 and seq = 3",
                    "update enclave.audit_events set seq = 3 where tenant_id = $1 and seq = 4",
                    "update enclave.audit_events set seq = 4 where tenant_id = $1 and seq = 100000",
                ], [practice])
            let broken = try #require(try await verify(keys).first)
            #expect((broken.chain, broken.seq) == (practice, 3))
        }
    }

    @Test("a forged event inserted with a correct hash of its own is found at the next link")
    func forgedInsert() async throws {
        try await Self.withChain { fixture, keys, practice in
            // A careful forger: make room after seq 5, write seq 6 linked to 5 with a valid hash.
            try await Self.tamper(
                fixture,
                [
                    "update enclave.audit_events set seq = seq + 1000 where tenant_id = $1 and seq > 5",
                    "update enclave.audit_events set seq = seq - 999 where tenant_id = $1 and seq > 1000",
                    """
                    insert into enclave.audit_events (tenant_id, seq, at, actor_kind, action, outcome, details, prev_hash, hash)
                    select $1, 6, e.at, 'operator', 'key.rotated', 'ok', '{}', e.hash,
                           sha256(e.hash || enclave_private.audit_canonical($1, 6, (extract(epoch from e.at) * 1000000)::int8,
                               null, 'operator', null, 'key.rotated', null, null, 'ok', null, null, null, null, '{}'))
                    from enclave.audit_events e where e.tenant_id = $1 and e.seq = 5
                    """,
                ], [practice])
            let broken = try #require(try await verify(keys).first)
            #expect((broken.chain, broken.seq) == (practice, 7))
            #expect(broken.problem.contains("link"))
        }
    }

    @Test("deleting the last events, head fixed up too, is caught with a checkpoint")
    func truncatedTail() async throws {
        try await Self.withChain { fixture, keys, practice in
            let keyPath = fixture.keyFile + ".audit"
            defer { try? FileManager.default.removeItem(atPath: keyPath) }
            let key = try MasterKeyFile.create(path: keyPath)
            let verifier = AuditVerifier(maintenance: keys.maintenance)
            let saved = try Checkpoint.decode(
                try Checkpoint(heads: try await verifier.heads()).encoded(key: key), key: key)
            try await Self.tamper(
                fixture,
                [
                    "delete from enclave.audit_events where tenant_id = $1 and seq > 7",
                    "update enclave_private.audit_heads h set seq = 7, hash = e.hash from enclave.audit_events e where h.chain_id = $1 and e.tenant_id = $1 and e.seq = 7",
                ], [practice])
            #expect(try await verify(keys).isEmpty, "without a checkpoint a consistent truncation looks whole")
            let broken = try #require(try await verify(keys, checkpoint: saved).first)
            #expect((broken.chain, broken.seq) == (practice, 8))
            #expect(broken.problem.contains("truncated"))
            // A checkpoint altered without the key is refused.
            var data = try Checkpoint(heads: try await verifier.heads()).encoded(key: key)
            data = Data(
                String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\"seq\" : 7", with: "\"seq\" : 6").utf8)
            #expect(throws: ConfigurationError.self) { try Checkpoint.decode(data, key: key) }
        }
    }

    @Test(
        "the service and maintenance roles cannot update, delete or truncate events; the owner cannot update or delete")
    func appendOnly() async throws {
        try await Self.withChain { fixture, _, practice in
            for variable in [DatabaseRole.app.variable, DatabaseRole.maint.variable, DatabaseRole.owner.variable] {
                let connection = try await fixture.database.connect(variable)
                defer { Task { await connection.close() } }
                if variable == DatabaseRole.maint.variable {
                    try await connection.query(
                        "select set_config('enclave.maint_tenant', $1, false)", [practice.uuidString])
                }
                for statement in [
                    "update enclave.audit_events set reason = 'x'",
                    "delete from enclave.audit_events",
                    "truncate enclave.audit_events",
                ] {
                    do {
                        try await connection.query(statement)
                        Issue.record("\(variable): \(statement) succeeded")
                    } catch let error as PostgresError {
                        // 42501: insufficient privilege, or the append-only trigger.
                        #expect(error.sqlState == "42501", "\(variable): \(statement): \(error.debugDescription)")
                    }
                }
            }
        }
    }

    @Test("a failing audit write fails the access that needed it, and nothing is returned")
    func failClosed() async throws {
        try await IdentityFixture.with { fixture in
            try await fixture.superuser(
                """
                create function public.refuse_audit() returns trigger language plpgsql as $$
                begin raise exception 'audit storage unavailable'; end $$
                """)
            try await fixture.superuser(
                "create trigger refuse_audit before insert on enclave.audit_events for each row execute function public.refuse_audit()"
            )
            let result = Locked<[Int]>([])
            await #expect(throws: PostgresError.self) {
                try await fixture.access.withPractice(
                    fixture.memberToken, practice: fixture.practiceA, scope: .leadsRead
                ) {
                    transaction in
                    let rows = try await transaction.query("select id from enclave.leads")
                    try await transaction.audit(
                        AuditEvent(
                            tenant: fixture.practiceA, action: .phiRead, objectType: "lead",
                            details: ["leads": .ids(try rows.map { try $0.decode(UUID.self, "id") })]))
                    result.withLock { $0.append(rows.count) }
                }
            }
            #expect(result.value.isEmpty)
        }
    }

    @Test("8 tasks appending 1,000 events each, to one chain and to different chains, leave intact, gapless chains")
    func concurrency() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let registry = PracticeRegistry(keys: keys)
            var practices: [UUID] = []
            for index in 0..<8 { practices.append(try await registry.create(name: "Concurrent \(index)")) }
            let pool = ConnectionPool(
                configuration: try fixture.database.configuration("ENCLAVE_MAINT_DATABASE_URL"),
                options: .init(maxConnections: 8))
            let maintenance = MaintenanceContext(pool: pool)
            for sameChain in [true, false] {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for task in 0..<8 {
                        let chain = sameChain ? practices[0] : practices[task]
                        group.addTask {
                            for index in 0..<1000 {
                                try await maintenance.withTenant(chain) { transaction in
                                    try await transaction.audit(
                                        AuditEvent(tenant: chain, action: .keyRotated, objectID: "\(task)-\(index)"))
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let superuser = try await fixture.database.connect()
            defer { Task { await superuser.close() } }
            let stats = try await superuser.query(
                """
                select tenant_id, count(*)::int8 as n, count(distinct seq)::int8 as d, min(seq) as lo, max(seq) as hi
                from enclave.audit_events group by tenant_id
                """)
            for row in stats {
                let count = try row.decode(Int64.self, "n")
                #expect(try row.decode(Int64.self, "d") == count)
                #expect(try row.decode(Int64.self, "lo") == 1)
                #expect(try row.decode(Int64.self, "hi") == count)
            }
            let first = try stats.first { try $0.decode(UUID.self, "tenant_id") == practices[0] }
            #expect(try first?.decode(Int64.self, "n") == 1 + 8000 + 1000)
            let report = try await AuditVerifier(maintenance: keys.maintenance).verify()
            #expect(report.breaks.isEmpty)
            #expect(report.events == 8 + 16000)
            await pool.close()
        }
    }

    @Test("identity events, denials and agreements land in the right chains; owners and agency admins read them")
    func reading() async throws {
        try await IdentityFixture.with { fixture in
            let log = AuditLog(identity: fixture.identity)
            // A member's read (a disclosure to the agency), and a refused attempt on practice B.
            try await fixture.access.withPractice(fixture.memberToken, practice: fixture.practiceA, scope: .leadsRead) {
                transaction in
                try await transaction.audit(
                    AuditEvent(tenant: fixture.practiceA, action: .phiRead, objectType: "lead", reason: "work the lead")
                )
            }
            await #expect(throws: AccessError.self) {
                try await fixture.serviceCount(fixture.memberToken, practice: fixture.practiceB)
            }
            let events = try await log.practiceEvents(fixture.ownerAToken, practice: fixture.practiceA)
            let actions = Set(events.map(\.action))
            for expected in ["tenant.created", "baa.proposed", "baa.approved", "assignment.granted", "phi.read"] {
                #expect(actions.contains(expected), "\(expected) missing from \(actions)")
            }
            let reads = try await log.practiceEvents(
                fixture.ownerAToken, practice: fixture.practiceA, filter: .init(actor: fixture.member, action: .phiRead)
            )
            #expect(reads.count == 1)
            #expect(reads.first?.actorEmail == "member@agency.test")

            let disclosures = try await log.disclosures(fixture.ownerAToken, practice: fixture.practiceA)
            #expect(disclosures.map(\.action) == ["phi.read"])
            #expect(disclosures.first?.agency == "Growth Agency")
            #expect(disclosures.first?.reason == "work the lead")

            let ownerB = try await IdentityFixture.signInWithMFA(fixture.identity, fixture.keys, "owner@b.test")
            let denials = try await log.practiceEvents(
                ownerB, practice: fixture.practiceB, filter: .init(action: .accessDenied))
            #expect(denials.count == 1)
            #expect(denials.first?.actorID == fixture.member)
            #expect(denials.first?.outcome == "denied")

            // Owners of one practice cannot read another's trail; members cannot read it at all.
            await #expect(throws: AccessError(.forbidden, "")) {
                try await log.practiceEvents(fixture.ownerAToken, practice: fixture.practiceB)
            }
            await #expect(throws: AccessError(.forbidden, "")) {
                try await log.practiceEvents(fixture.memberToken, practice: fixture.practiceA)
            }
            let agency = try await log.agencyEvents(fixture.adminToken, agency: fixture.agency)
            #expect(
                Set(agency.map(\.action)).isSuperset(of: ["auth.login", "phi.read", "access.denied", "baa.proposed"]))
            #expect(agency.allSatisfy { [fixture.admin, fixture.member].contains($0.actorID) })
            await #expect(throws: AccessError(.forbidden, "")) {
                try await log.agencyEvents(fixture.memberToken, agency: fixture.agency)
            }
            // The service cannot write events it does not perform, nor an "ok" access it could not do.
            await #expect(throws: AccessError(.forbidden, "")) {
                try await fixture.identity.withSession(fixture.memberToken) { transaction in
                    try await transaction.audit(AuditEvent(tenant: fixture.practiceA, action: .baaApproved))
                }
            }
            await #expect(throws: AccessError(.forbidden, "")) {
                try await fixture.identity.withSession(fixture.memberToken) { transaction in
                    try await transaction.audit(AuditEvent(tenant: fixture.practiceB, action: .phiRead))
                }
            }
            let report = try await AuditVerifier(maintenance: fixture.keys.maintenance()).verify()
            #expect(report.breaks.isEmpty)
        }
    }

    @Test("an owner's download of the trail is recorded as audit.exported and needs a fresh session; members get none")
    func export() async throws {
        try await IdentityFixture.with { fixture in
            let log = AuditLog(identity: fixture.identity)
            let shown = try await log.practiceEvents(fixture.ownerAToken, practice: fixture.practiceA)
            let (entries, complete) = try await log.exportPracticeEvents(
                fixture.ownerAToken, practice: fixture.practiceA)
            #expect(complete)
            // Oldest first, the same events the page shows newest first.
            #expect(entries.map(\.seq) == shown.map(\.seq).reversed())
            let approvals = try await log.exportPracticeEvents(
                fixture.ownerAToken, practice: fixture.practiceA, filter: .init(action: .baaApproved))
            #expect(approvals.entries.map(\.action) == ["baa.approved"])
            let recorded = try await log.practiceEvents(
                fixture.ownerAToken, practice: fixture.practiceA, filter: .init(action: .auditExported))
            #expect(recorded.count == 2)
            #expect(
                recorded.allSatisfy {
                    $0.actorID == fixture.ownerA && $0.objectID == fixture.practiceA.uuidString.lowercased()
                })

            await #expect(throws: AccessError(.forbidden, "")) {
                try await log.exportPracticeEvents(fixture.memberToken, practice: fixture.practiceA)
            }
            await #expect(throws: AccessError(.forbidden, "")) {
                try await log.exportPracticeEvents(fixture.ownerAToken, practice: fixture.practiceB)
            }
            try await fixture.superuser(
                "update enclave.sessions set authenticated_at = now() - interval '6 minutes' where user_id = $1",
                [fixture.ownerA])
            await #expect(throws: AccessError(.reauthenticationRequired, "")) {
                try await log.exportPracticeEvents(fixture.ownerAToken, practice: fixture.practiceA)
            }
            let after = try await log.practiceEvents(
                fixture.ownerAToken, practice: fixture.practiceA, filter: .init(action: .auditExported))
            #expect(after.count == 2)
        }
    }

    @Test("retention removes the oldest events, records it in the chain, and the chain still verifies")
    func retention() async throws {
        try await Self.withChain { fixture, keys, practice in
            let owner = try await fixture.database.connect(DatabaseRole.owner.variable)
            defer { Task { await owner.close() } }
            let removed = try await owner.query("select enclave_private.apply_audit_retention($1, 4) as n", [practice])
            #expect(try removed.first?.decode(Int64.self, "n") == 4)
            let report = try await AuditVerifier(maintenance: keys.maintenance).verify()
            #expect(report.breaks.isEmpty, "\(report.breaks)")
            #expect(report.events == 7)
            // Retention is the only way to delete: a plain delete by the owner is refused.
            await #expect(throws: PostgresError.self) { try await owner.query("delete from enclave.audit_events") }
        }
    }
}
