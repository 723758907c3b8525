import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Synchronization
import Testing

@testable import Enclave

@Suite("The audit trail")
struct AuditTests {
    /// A practice whose chain holds 10 linked events: its creation and nine key rotations.
    static func withChain<T: Sendable>(_ body: (KeyFixture, KeyManagement, UUID) async throws -> T) async throws -> T {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let practice = try await PracticeRegistry(keys: keys).create(name: "Audited Dental")
            for _ in 0..<9 { _ = try await keys.rotate(tenants: [practice]) }
            _ = try await keys.maintenance.chainer().linkPending()
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
        try await keys.maintenance.verifier().verify(checkpoint: checkpoint).breaks
    }

    /// A checkpoint log in a temporary file, removed after `body`.
    static func withLog<T>(_ body: (CheckpointLog) async throws -> T) async throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-log-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(CheckpointLog(path: path, key: testAuditKey))
    }

    @Test("an intact chain verifies; the chainer numbers it from 1 without gaps")
    func intact() async throws {
        try await Self.withChain { _, keys, practice in
            let report = try await keys.maintenance.verifier().verify()
            #expect(report.breaks.isEmpty)
            #expect(report.events >= 10)
            #expect(report.unlinked == 0)
            let heads = try await keys.maintenance.verifier().heads()
            #expect(heads.first { $0.chain == practice }?.seq == 10)
        }
    }

    @Test("a changed field is found, naming tenant and position")
    func editedField() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.tamper(
                fixture, ["update enclave.audit_events set object_id = '99' where tenant_id = $1 and chain_seq = 4"],
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
                fixture, ["delete from enclave.audit_events where tenant_id = $1 and chain_seq = 6"], [practice])
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
                    "update enclave.audit_events set chain_seq = 100000 where tenant_id = $1 and chain_seq = 3",
                    "update enclave.audit_events set chain_seq = 3 where tenant_id = $1 and chain_seq = 4",
                    "update enclave.audit_events set chain_seq = 4 where tenant_id = $1 and chain_seq = 100000",
                ], [practice])
            let broken = try #require(try await verify(keys).first)
            #expect((broken.chain, broken.seq) == (practice, 3))
        }
    }

    /// SQL that makes room after position `after` and writes a forged, linked event there, linked
    /// to the event before it with `hashSQL` (an expression over the event before, `e`).
    static func forge(after: Int64, link: Int, hashSQL: String) -> [String] {
        [
            "update enclave.audit_events set chain_seq = chain_seq + 1000 where tenant_id = $1 and chain_seq > \(after)",
            "update enclave.audit_events set chain_seq = chain_seq - 999 where tenant_id = $1 and chain_seq > 1000",
            """
            insert into enclave.audit_events (tenant_id, seq, chain_seq, link, at, actor_kind, action, outcome, details, prev_hash, hash)
            select $1, 900000 + \(after), \(after + 1), \(link), e.at, 'operator', 'key.rotated', 'ok', '{}', e.hash, \(hashSQL)
            from enclave.audit_events e where e.tenant_id = $1 and e.chain_seq = \(after)
            """,
            """
            update enclave_private.audit_heads h set seq = e.chain_seq, hash = e.hash from enclave.audit_events e
            where h.chain_id = $1 and e.tenant_id = $1 and e.chain_seq = (select max(chain_seq) from enclave.audit_events where tenant_id = $1)
            """,
        ]
    }

    /// A forger's SHA-256 link over the v1 canonical form (all anyone without the key can compute).
    static func sha256Link(position: Int64) -> String {
        """
        sha256(e.hash || enclave_private.audit_canonical($1, \(position), (extract(epoch from e.at) * 1000000)::int8,
            null, 'operator', null, 'key.rotated', null, null, 'ok', null, null, null, null, '{}'))
        """
    }

    @Test("a forged event inserted mid-chain, linked without the key, is found where it stands")
    func forgedInsert() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.tamper(
                fixture, Self.forge(after: 5, link: 2, hashSQL: Self.sha256Link(position: 6)), [practice])
            let broken = try #require(try await verify(keys).first)
            #expect((broken.chain, broken.seq) == (practice, 6))
            #expect(broken.problem.contains("forged without the key"))
        }
    }

    @Test("an event appended or rewritten after the last checkpoint, head moved to match, is caught")
    func appendedAfterCheckpoint() async throws {
        try await Self.withLog { log in
            try await Self.withChain { fixture, keys, practice in
                try await keys.maintenance.chainer(log: log).checkpointAllHeads()
                let checkpoint = try #require(try log.read())
                #expect(try await verify(keys, checkpoint: checkpoint).isEmpty)
                // Appended at the tail: as a chainer link (no key), or as an old SHA-256 link.
                try await Self.tamper(
                    fixture, Self.forge(after: 10, link: 2, hashSQL: Self.sha256Link(position: 11)), [practice])
                var broken = try #require(try await verify(keys, checkpoint: checkpoint).first)
                #expect((broken.chain, broken.seq) == (practice, 11))
                try await Self.tamper(
                    fixture,
                    ["delete from enclave.audit_events where tenant_id = $1 and chain_seq = 11"]
                        + Self.forge(after: 10, link: 1, hashSQL: Self.sha256Link(position: 11)), [practice])
                broken = try #require(try await verify(keys, checkpoint: checkpoint).first)
                #expect((broken.chain, broken.seq) == (practice, 11))
                #expect(broken.problem.contains("SHA-256 link"))
                // Rewritten before the checkpoint, every later link recomputed without the key.
                try await Self.tamper(
                    fixture,
                    ["update enclave.audit_events set reason = 'rewritten' where tenant_id = $1 and chain_seq = 9"],
                    [practice])
                broken = try #require(try await verify(keys, checkpoint: checkpoint).first)
                #expect((broken.chain, broken.seq) == (practice, 9))
            }
        }
    }

    @Test("a retention record written without the audit key is caught")
    func forgedRetention() async throws {
        try await Self.withChain { fixture, keys, practice in
            // Remove the first four events and claim a retention did it, as a forger would.
            try await Self.tamper(
                fixture,
                [
                    """
                    insert into enclave.audit_events (tenant_id, actor_kind, action, object_type, object_id, outcome, reason, details)
                    select $1, 'operator', 'audit.retention', 'audit_chain', $1::text, 'ok', 'retention policy',
                           jsonb_build_object('removed_from_seq', 1, 'removed_through_seq', 4, 'removed', 4,
                               'last_removed_hash', encode(e.hash, 'hex'), 'authorization', repeat('ab', 32))
                    from enclave.audit_events e where e.tenant_id = $1 and e.chain_seq = 4
                    """,
                    "delete from enclave.audit_events where tenant_id = $1 and chain_seq <= 4",
                ], [practice])
            // The chainer links the planted record like any other event; the key did not authorize it.
            let report = try await keys.maintenance.linkAndVerify()
            let broken = try #require(report.breaks.first)
            #expect((broken.chain, broken.seq) == (practice, 11))
            #expect(broken.problem.contains("forged"))
        }
    }

    @Test(
        "deleting the last events, head fixed up too, is caught against the checkpoint log; an altered log is refused")
    func truncatedTail() async throws {
        try await Self.withLog { log in
            try await Self.withChain { fixture, keys, practice in
                try await keys.maintenance.chainer(log: log).checkpointAllHeads()
                try await Self.tamper(
                    fixture,
                    [
                        "delete from enclave.audit_events where tenant_id = $1 and chain_seq > 7",
                        "update enclave_private.audit_heads h set seq = 7, hash = e.hash from enclave.audit_events e where h.chain_id = $1 and e.tenant_id = $1 and e.chain_seq = 7",
                    ], [practice])
                #expect(try await verify(keys).isEmpty, "without a checkpoint a consistent truncation looks whole")
                let broken = try #require(try await verify(keys, checkpoint: try log.read()).first)
                #expect((broken.chain, broken.seq) == (practice, 8))
                #expect(broken.problem.contains("truncated"))
                // A log altered without the key is refused, as is one with a record removed.
                let text = try String(contentsOfFile: log.path, encoding: .utf8)
                try text.replacingOccurrences(of: ",10,", with: ",7,").write(
                    toFile: log.path, atomically: true, encoding: .utf8)
                #expect(throws: ConfigurationError.self) { try CheckpointLog(path: log.path, key: testAuditKey).read() }
            }
        }
    }

    @Test("the log grows by records of the heads that moved; a record cut short by a crash is dropped and repaired")
    func checkpointLog() async throws {
        try await Self.withLog { log in
            try await KeyFixture.with { fixture in
                let keys = try await fixture.keys()
                let chainer = keys.maintenance.chainer(log: log)
                let registry = PracticeRegistry(keys: keys)
                let first = try await registry.create(name: "First")
                var pass = try await chainer.linkPending()
                #expect(pass.linked >= 1)
                #expect(pass.checkpointed >= 1)
                let second = try await registry.create(name: "Second")
                pass = try await chainer.linkPending()
                #expect(pass.checkpointed >= 1)
                let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
                #expect(lines.count == 2)
                #expect(!lines[1].contains(first.uuidString.lowercased()))
                #expect(lines[1].contains(second.uuidString.lowercased()))
                // A torn write: half a record with no newline.
                let handle = try #require(FileHandle(forWritingAtPath: log.path))
                try handle.seekToEnd()
                try handle.write(contentsOf: Data(#"{"at":1,"heads":[["#.utf8))
                try handle.close()
                let reopened = CheckpointLog(path: log.path, key: testAuditKey)
                let linkedChains = try await keys.maintenance.verifier().heads().filter { $0.seq > 0 }.count
                #expect(try reopened.read()?.heads.count == linkedChains)
                _ = try await keys.rotate(tenants: [first])
                _ = try await AuditChainer(maintenance: keys.maintenance, key: testAuditKey, log: reopened)
                    .linkPending()
                let repaired = try String(contentsOfFile: log.path, encoding: .utf8)
                #expect(repaired.hasSuffix("\n"))
                #expect(!repaired.contains(#"{"at":1,"#))
                let checkpoint = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(try await verify(keys, checkpoint: checkpoint).isEmpty)
            }
        }
    }

    @Test("two chainers, each with its own view of the log, append side by side under load; the log verifies")
    func twoChainers() async throws {
        try await Self.withLog { log in
            try await KeyFixture.with { fixture in
                let keys = try await fixture.keys()
                let registry = PracticeRegistry(keys: keys)
                var created: [UUID] = []
                for index in 0..<4 { created.append(try await registry.create(name: "Side by side \(index)")) }
                let practices = created
                // As two processes would: each chainer with a CheckpointLog of its own over one file.
                let chainers = (0..<2).map { _ in
                    AuditChainer(
                        maintenance: keys.maintenance, key: testAuditKey,
                        log: CheckpointLog(path: log.path, key: testAuditKey), batchSize: 20)
                }
                let maintenance = keys.maintenance
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for index in 0..<400 {
                            let chain = practices[index % practices.count]
                            try await maintenance.withTenant(chain) { transaction in
                                try await transaction.audit(
                                    AuditEvent(tenant: chain, action: .keyRotated, objectID: "\(index)"))
                            }
                        }
                    }
                    for chainer in chainers {
                        group.addTask {
                            for _ in 0..<60 {
                                _ = try await chainer.linkPending()
                                try await Task.sleep(for: .milliseconds(2))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                _ = try await chainers[1].linkPending()
                let records = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n").count
                #expect(records > 2)
                let checkpoint = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(try await verify(keys, checkpoint: checkpoint).isEmpty)
                #expect(
                    try await keys.maintenance.verifier().heads().allSatisfy { head in
                        checkpoint.heads.contains(head) || head.seq == 0
                    })
            }
        }
    }

    @Test("no log, no pass: without a checkpoint record, verifying linked events is refused")
    func noLogNoPass() async throws {
        try await Self.withChain { _, keys, _ in
            let verifier = keys.maintenance.verifier()
            await #expect(throws: ConfigurationError.self) { try await verifier.requireCheckpoint(nil, log: "/gone") }
        }
        try await KeyFixture.with { fixture in
            // Nothing linked yet: a first run needs no log.
            try await fixture.keys().maintenance.verifier().requireCheckpoint(nil, log: "/gone")
        }
    }

    @Test("unlinked events are counted, and one left unlinked too long is a break")
    func unlinked() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let practice = try await PracticeRegistry(keys: keys).create(name: "Waiting")
            let report = try await keys.maintenance.verifier().verify(chains: [practice])
            #expect(report.unlinked == 1)
            #expect(report.breaks.isEmpty)
            let strict = AuditVerifier(maintenance: keys.maintenance, key: testAuditKey, maxUnlinkedAge: .zero)
            let broken = try #require(try await strict.verify(chains: [practice]).breaks.first)
            #expect(broken.problem.contains("not linked"))
            #expect(try await keys.maintenance.linkAndVerify().breaks.isEmpty)
        }
    }

    @Test("linking is the chainer's alone, fills only unlinked events, and must continue the chain's head")
    func linkingGuards() async throws {
        try await Self.withChain { fixture, keys, practice in
            _ = try await keys.rotate(tenants: [practice])
            let pending = try await fixture.database.connect()
            defer { Task { await pending.close() } }
            let seq = try #require(
                try await pending.query(
                    "select seq from enclave.audit_events where tenant_id = $1 and chain_seq is null", [practice]
                ).first?.decode(Int64.self, "seq"))
            let zero = String(repeating: "0", count: 64)
            let call =
                "select enclave_private.link_audit_events(array[$1]::uuid[], array[$2]::int8[], array[$3]::int8[], array[$4], array[$4])"
            func refusal(_ variable: String, _ position: Int64, _ expected: String) async throws {
                let connection = try await fixture.database.connect(variable)
                defer { Task { await connection.close() } }
                do {
                    try await connection.query(call, [practice, seq, position, zero])
                    Issue.record("\(variable) linked at \(position)")
                } catch let error as PostgresError {
                    #expect(error.sqlState == expected, "\(error.debugDescription)")
                }
            }
            try await refusal(DatabaseRole.app.variable, 11, "42501")
            try await refusal(DatabaseRole.maint.variable, 11, "40001")  // does not follow the head's hash
            try await refusal(DatabaseRole.maint.variable, 5, "40001")  // not the next position
            #expect(try await keys.maintenance.linkAndVerify().breaks.isEmpty)
        }
    }

    @Test("readers of one practice do not wait for each other's audit events")
    func noChainLock() async throws {
        try await Self.withChain { fixture, keys, practice in
            let first = try await fixture.database.connect(DatabaseRole.maint.variable)
            let second = try await fixture.database.connect(DatabaseRole.maint.variable)
            defer {
                Task {
                    await first.close(); await second.close()
                }
            }
            for connection in [first, second] {
                try await connection.query("begin")
                try await connection.query("select set_config('enclave.maint_tenant', $1, true)", [practice.uuidString])
            }
            let record = """
                select enclave_private.record_audit($1, 'key.rotated', 'tenant', 'x', 'ok', null, null, null, null, null)
                """
            try await first.query(record, [practice])
            // With a per-chain lock this would wait for the first transaction; it must not.
            try await second.query("set local lock_timeout = '2s'")
            try await second.query(record, [practice])
            try await second.query("commit")
            try await first.query("commit")
            #expect(try await keys.maintenance.linkAndVerify().breaks.isEmpty)
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
                if variable == DatabaseRole.owner.variable {
                    try await connection.query("select set_config('enclave.audit_linking', 'on', false)")
                }
                for statement in [
                    "update enclave.audit_events set chain_seq = null, prev_hash = null, hash = null, link = null where chain_seq > 8",
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
                    let rows = try await transaction.query("select id from enclave.leads /* test: isolation probe */")
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
            let report = try await keys.maintenance.linkAndVerify()
            #expect(report.breaks.isEmpty)
            #expect(report.events == 8 + 16000)
            let superuser = try await fixture.database.connect()
            defer { Task { await superuser.close() } }
            let stats = try await superuser.query(
                """
                select tenant_id, count(*)::int8 as n, count(distinct chain_seq)::int8 as d, min(chain_seq) as lo,
                       max(chain_seq) as hi, count(distinct seq)::int8 as numbers
                from enclave.audit_events group by tenant_id
                """)
            for row in stats {
                let count = try row.decode(Int64.self, "n")
                #expect(try row.decode(Int64.self, "d") == count)
                #expect(try row.decode(Int64.self, "numbers") == count)
                #expect(try row.decode(Int64.self, "lo") == 1)
                #expect(try row.decode(Int64.self, "hi") == count)
            }
            let first = try stats.first { try $0.decode(UUID.self, "tenant_id") == practices[0] }
            #expect(try first?.decode(Int64.self, "n") == 1 + 8000 + 1000)
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
            // Newest first, a page at a time: the member reads again; the owner's own read is no
            // disclosure.
            for token in [fixture.memberToken, fixture.ownerAToken] {
                try await fixture.access.withPractice(token, practice: fixture.practiceA, scope: .leadsRead) {
                    transaction in
                    try await transaction.audit(
                        AuditEvent(tenant: fixture.practiceA, action: .phiRead, objectType: "lead", reason: "again"))
                }
            }
            let newest = try await log.disclosures(fixture.ownerAToken, practice: fixture.practiceA, limit: 1)
            #expect(newest.map(\.reason) == ["again"])
            #expect(newest.first?.actorID == fixture.member)
            let older = try await log.disclosures(
                fixture.ownerAToken, practice: fixture.practiceA, beforeSeq: newest.first?.seq, limit: 5)
            #expect(older.map(\.reason) == ["work the lead"])

            let ownerB = try await IdentityFixture.signInWithMFA(fixture.identity, fixture.keys, "owner@b.test")
            let denials = try await log.practiceEvents(
                ownerB, practice: fixture.practiceB, filter: .init(action: .accessDenied))
            #expect(denials.count == 1)
            #expect(denials.first?.actorID == fixture.member)
            #expect(denials.first?.outcome == "denied")

            // Owners of one practice cannot read another's trail; members cannot read it at all.
            await #expect(throws: AccessError(.forbidden, "only an owner of the practice may read its audit trail")) {
                try await log.practiceEvents(fixture.ownerAToken, practice: fixture.practiceB)
            }
            await #expect(throws: AccessError(.forbidden, "only an owner of the practice may read its audit trail")) {
                try await log.practiceEvents(fixture.memberToken, practice: fixture.practiceA)
            }
            let agency = try await log.agencyEvents(fixture.adminToken, agency: fixture.agency)
            #expect(
                Set(agency.map(\.action)).isSuperset(of: ["auth.login", "phi.read", "access.denied", "baa.proposed"]))
            #expect(agency.allSatisfy { [fixture.admin, fixture.member].contains($0.actorID) })
            await #expect(throws: AccessError(.forbidden, "only an admin of the agency may read its audit events")) {
                try await log.agencyEvents(fixture.memberToken, agency: fixture.agency)
            }
            // The service cannot write events it does not perform, nor an "ok" access it could not do.
            await #expect(throws: AccessError(.forbidden, "you may not do that")) {
                try await fixture.identity.withSession(fixture.memberToken) { transaction in
                    try await transaction.audit(AuditEvent(tenant: fixture.practiceA, action: .baaApproved))
                }
            }
            await #expect(throws: AccessError(.forbidden, "you may not do that")) {
                try await fixture.identity.withSession(fixture.memberToken) { transaction in
                    try await transaction.audit(AuditEvent(tenant: fixture.practiceB, action: .phiRead))
                }
            }
            let report = try await fixture.keys.maintenance().linkAndVerify()
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

            await #expect(throws: AccessError(.forbidden, "only an owner of the practice may read its audit trail")) {
                try await log.exportPracticeEvents(fixture.memberToken, practice: fixture.practiceA)
            }
            await #expect(throws: AccessError(.forbidden, "only an owner of the practice may read its audit trail")) {
                try await log.exportPracticeEvents(fixture.ownerAToken, practice: fixture.practiceB)
            }
            try await fixture.superuser(
                "update enclave.sessions set authenticated_at = now() - interval '6 minutes' where user_id = $1",
                [fixture.ownerA])
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
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
            let ownerPool = ConnectionPool(
                configuration: try fixture.database.configuration(DatabaseRole.owner.variable),
                options: .init(maxConnections: 1))
            // Events are kept six years: these four are made that old (triggers off, as a superuser).
            let superuser = try await fixture.database.connect()
            try await superuser.query("set session_replication_role = replica")
            try await superuser.query(
                "update enclave.audit_events set at = at - interval '7 years' where tenant_id = $1 and chain_seq <= 4",
                [practice])
            await superuser.close()
            let removed = try await AuditRetention.apply(
                chain: practice, throughSeq: 4, key: testAuditKey, ownerPool: ownerPool)
            await ownerPool.close()
            #expect(removed == 4)
            let report = try await keys.maintenance.linkAndVerify()
            #expect(report.breaks.isEmpty, "\(report.breaks)")
            #expect(report.events == 7)
            // Without the key's authorization the database refuses.
            await #expect(throws: PostgresError.self) {
                try await owner.query("select enclave_private.apply_audit_retention($1, 6, null)", [practice])
            }
            // Retention is the only way to delete: a plain delete by the owner is refused.
            await #expect(throws: PostgresError.self) { try await owner.query("delete from enclave.audit_events") }
        }
    }

    // MARK: What a superuser could once do through the chainer (issue 26)

    /// Moves `practice`'s head back to position `to`, as a tamperer covering a cut would.
    static func moveHead(_ fixture: KeyFixture, _ practice: UUID, to position: Int64) async throws {
        try await tamper(
            fixture,
            [
                """
                update enclave_private.audit_heads h set seq = e.chain_seq, hash = e.hash, event_seq = e.seq
                from enclave.audit_events e where h.chain_id = $1 and e.tenant_id = $1 and e.chain_seq = \(position)
                """
            ], [practice])
    }

    @Test(
        "a tail cut off with the head moved back is not signed over by the next chainer pass, and verify still finds it"
    )
    func cutTailThenChainerPass() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.withLog { log in
                let chainer = keys.maintenance.chainer(log: log)
                try await chainer.checkpointAllHeads()
                try await Self.tamper(
                    fixture, ["delete from enclave.audit_events where tenant_id = $1 and chain_seq > 7"], [practice])
                try await Self.moveHead(fixture, practice, to: 7)
                _ = try await keys.rotate(tenants: [practice])  // traffic goes on after the cut
                let pass = try await chainer.linkPending()
                #expect(pass.linked == 0)
                #expect(pass.refused == 1)
                #expect(pass.alerts.contains { $0.contains("does not extend the checkpointed seq 10") })
                // Nor does a chainer started afresh checkpoint the head that went back.
                let restarted = AuditChainer(
                    maintenance: keys.maintenance, key: testAuditKey,
                    log: CheckpointLog(path: log.path, key: testAuditKey))
                let startup = try await restarted.checkpointAllHeads()
                #expect(startup.checkpointed == 0)
                #expect(startup.alerts.count == 1)
                let saved = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(saved.heads.first { $0.chain == practice }?.seq == 10)
                let broken = try #require(try await verify(keys, checkpoint: saved).first { $0.chain == practice })
                #expect(broken.seq == 8)
                #expect(broken.problem.contains("truncated"))
            }
        }
    }

    @Test("verify compares every head the log ever recorded, not only the latest")
    func everyCheckpointedHead() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.withLog { log in
                try await keys.maintenance.chainer(log: log).checkpointAllHeads()
                // A cut at 7 and five new events linked after it by a chainer that kept no log (as an
                // older release's would have), whose head, at 12, the log then recorded.
                try await Self.tamper(
                    fixture, ["delete from enclave.audit_events where tenant_id = $1 and chain_seq > 7"], [practice])
                try await Self.moveHead(fixture, practice, to: 7)
                for _ in 0..<5 { _ = try await keys.rotate(tenants: [practice]) }
                _ = try await keys.maintenance.chainer().linkPending()
                let head = try #require(try await keys.maintenance.verifier().heads().first { $0.chain == practice })
                #expect(head.seq == 12)
                #expect(try log.append([head]) == 1)
                let saved = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                let broken = try #require(try await verify(keys, checkpoint: saved).first { $0.chain == practice })
                #expect(broken.seq == 10)  // the position the log recorded first
                #expect(broken.problem.contains("differs from the checkpoint log"))
            }
        }
    }

    @Test("linked events set back to unlinked, one deleted and a read dated three days back planted, are not signed")
    func rewriteThroughChainer() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.withLog { log in
                let chainer = keys.maintenance.chainer(log: log)
                try await chainer.checkpointAllHeads()
                let superuser = try await fixture.database.connect()
                defer { Task { await superuser.close() } }
                let original = try #require(
                    try await superuser.query(
                        "select seq, hash, event_seq from enclave_private.audit_heads where chain_id = $1", [practice]
                    ).first)
                try await Self.tamper(
                    fixture,
                    [
                        """
                        update enclave.audit_events set chain_seq = null, prev_hash = null, hash = null, link = null
                        where tenant_id = $1 and chain_seq > 7
                        """,
                        """
                        delete from enclave.audit_events where tenant_id = $1 and seq =
                            (select min(seq) from enclave.audit_events where tenant_id = $1 and chain_seq is null)
                        """,
                        """
                        insert into enclave.audit_events (tenant_id, at, actor_kind, action, object_type, object_id, outcome)
                        values ($1, now() - interval '3 days', 'user', 'phi.read', 'lead', 'planted', 'ok')
                        """,
                    ], [practice])
                try await Self.moveHead(fixture, practice, to: 7)
                let pass = try await chainer.linkPending()
                #expect(pass.linked == 0)
                #expect(pass.refused >= 1)
                #expect(pass.alerts.contains { $0.contains("does not extend the checkpointed seq 10") })
                let saved = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(try await verify(keys, checkpoint: saved).contains { $0.chain == practice })

                // With the head left where it was, the planted read is refused for its age, and the
                // events set back to unlinked are not new: the database refuses to link them too.
                try await Self.tamper(
                    fixture,
                    ["update enclave_private.audit_heads set seq = $2, hash = $3, event_seq = $4 where chain_id = $1"],
                    [
                        practice, try original.decode(Int64.self, "seq"), try original.decode([UInt8].self, "hash"),
                        try original.decode(Int64.self, "event_seq"),
                    ])
                let head = try #require(try await keys.maintenance.verifier().heads().first { $0.chain == practice })
                let fresh = AuditChainer(maintenance: keys.maintenance, key: testAuditKey, log: nil)
                let again = try await fresh.linkPending()
                #expect(again.alerts.contains { $0.contains("written more than 300 s ago") })
                let maint = try await fixture.database.connect(DatabaseRole.maint.variable)
                defer { Task { await maint.close() } }
                let unlinked = try await Self.unlinkedSeqs(fixture, practice)
                #expect(unlinked.count == 3)  // two set back, one planted
                do {
                    try await maint.query(
                        "select enclave_private.link_audit_events(array[$1]::uuid[], array[$2]::int8[], array[$3]::int8[], array[$4], array[$4])",
                        [practice, unlinked[0], head.seq + 1, head.hash.hex])
                    Issue.record("an event set back to unlinked was linked again")
                } catch let error as PostgresError {
                    #expect(error.debugDescription.contains("audit_link_not_new"), "\(error.debugDescription)")
                }
            }
        }
    }

    /// The numbers of `practice`'s unlinked events, lowest first.
    static func unlinkedSeqs(_ fixture: KeyFixture, _ practice: UUID) async throws -> [Int64] {
        let connection = try await fixture.database.connect()
        defer { Task { await connection.close() } }
        return try await connection.query(
            "select seq from enclave.audit_events where tenant_id = $1 and chain_seq is null order by seq", [practice]
        ).map { try $0.decode(Int64.self, "seq") }
    }

    @Test("unlinked events deleted while the chainer is stopped leave numbers unaccounted for; a rollback does not")
    func deletedUnlinked() async throws {
        try await Self.withChain { fixture, keys, practice in
            try await Self.withLog { log in
                func chainer(window: Duration) -> AuditChainer {
                    AuditChainer(
                        maintenance: keys.maintenance, key: testAuditKey,
                        log: CheckpointLog(path: log.path, key: testAuditKey), window: window)
                }
                // While the chainer runs, a transaction that took a number and rolled back leaves it
                // missing, accounted for.
                let running = chainer(window: .seconds(300))
                _ = try await running.linkPending()
                struct Abandoned: Error {}
                await #expect(throws: Abandoned.self) {
                    try await keys.maintenance.withTenant(practice) { transaction in
                        try await transaction.audit(AuditEvent(tenant: practice, action: .keyRotated, objectID: "x"))
                        throw Abandoned()
                    }
                }
                _ = try await keys.rotate(tenants: [practice])
                let first = try await running.linkPending()
                #expect(first.linked == 1)
                #expect(first.alerts.isEmpty)
                var saved = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(saved.missing == 1)
                #expect(try await verify(keys, checkpoint: saved).isEmpty)

                // Stopped longer than its window (here 1 s): three events written, then deleted
                // before any chainer saw them.
                for _ in 0..<3 { _ = try await keys.rotate(tenants: [practice]) }
                try await Self.tamper(
                    fixture, ["delete from enclave.audit_events where tenant_id = $1 and chain_seq is null"], [practice]
                )
                try await Task.sleep(for: .milliseconds(1_500))
                let pass = try await chainer(window: .seconds(1)).linkPending()
                #expect(pass.linked == 0)
                #expect(pass.alerts.contains { $0.hasPrefix("3 numbers") })
                saved = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(saved.missing == 4)
                let broken = try await verify(keys, checkpoint: saved)
                #expect(broken.count == 1)
                #expect(broken.first?.problem.hasPrefix("3 platform numbers") == true)
            }
        }
    }

    @Test("verify during concurrent appends and linking reports nothing, 50 runs out of 50")
    func noFalseAlarm() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let registry = PracticeRegistry(keys: keys)
            var practices: [UUID] = []
            for index in 0..<4 { practices.append(try await registry.create(name: "Live \(index)")) }
            try await Self.withLog { log in
                let pool = ConnectionPool(
                    configuration: try fixture.database.configuration("ENCLAVE_MAINT_DATABASE_URL"),
                    options: .init(maxConnections: 6))
                let writers = MaintenanceContext(pool: pool)
                let chainer = AuditChainer(maintenance: writers, key: testAuditKey, log: log, batchSize: 50)
                final class Flag: Sendable { let value = Atomic(false) }
                let done = Flag()
                let reports = try await withThrowingTaskGroup(of: Void.self, returning: [String].self) { group in
                    for practice in practices {
                        group.addTask {
                            var index = 0
                            while !done.value.load(ordering: .relaxed) {
                                index += 1
                                try await writers.withTenant(practice) { transaction in
                                    try await transaction.audit(
                                        AuditEvent(tenant: practice, action: .keyRotated, objectID: "\(index)"))
                                }
                            }
                        }
                    }
                    group.addTask {
                        while !done.value.load(ordering: .relaxed) {
                            _ = try await chainer.linkPending()
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                    var reports: [String] = []
                    for _ in 0..<50 {
                        let saved = try CheckpointLog(path: log.path, key: testAuditKey).read()
                        reports += try await verify(keys, checkpoint: saved).map(\.description)
                    }
                    done.value.store(true, ordering: .relaxed)
                    try await group.waitForAll()
                    return reports
                }
                #expect(reports.isEmpty, "\(reports.prefix(3))")
                let linked = try await keys.maintenance.linkAndVerify(
                    checkpoint: try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(linked.breaks.isEmpty)
                #expect(linked.events > 4 * 10)
                await pool.close()
            }
        }
    }

    @Test("a log two writers forked is re-linked by repair without losing a record; an altered one is refused")
    func repairForkedLog() async throws {
        try await Self.withChain { _, keys, practice in
            try await Self.withLog { log in
                try await keys.maintenance.chainer(log: log).checkpointAllHeads()
                let before = try #require(try log.read()).heads.count
                // Two writers that each appended after the same record, as releases before the
                // file lock did.
                let original = try #require(FileManager.default.contents(atPath: log.path))
                let other = CheckpointLog(path: log.path + ".other", key: testAuditKey)
                defer { try? FileManager.default.removeItem(atPath: other.path) }
                FileManager.default.createFile(atPath: other.path, contents: original)
                let later = Checkpoint.Head(chain: UUID(), seq: 1, hash: [UInt8](repeating: 7, count: 32))
                #expect(
                    try log.append([Checkpoint.Head(chain: UUID(), seq: 3, hash: [UInt8](repeating: 1, count: 32))])
                        == 1)
                #expect(try other.append([later]) == 1)
                var forked = try #require(FileManager.default.contents(atPath: log.path))
                let extra = try #require(FileManager.default.contents(atPath: other.path)).dropFirst(original.count)
                forked.append(extra)
                FileManager.default.createFile(atPath: log.path, contents: forked)
                #expect(throws: ConfigurationError.self) { try CheckpointLog(path: log.path, key: testAuditKey).read() }

                let repaired = try CheckpointLog.repair(path: log.path, key: testAuditKey)
                #expect(repaired.records == 3)
                #expect(repaired.relinked == 1)
                let saved = try #require(try CheckpointLog(path: log.path, key: testAuditKey).read())
                #expect(saved.heads.count == before + 2)
                #expect(saved.heads.contains(later))
                #expect(saved.heads.contains { $0.chain == practice })
                let aside = try FileManager.default.contentsOfDirectory(
                    atPath: (log.path as NSString).deletingLastPathComponent
                ).filter { $0.hasPrefix((log.path as NSString).lastPathComponent + ".forked-") }
                #expect(aside.count == 1)
                for name in aside {
                    try? FileManager.default.removeItem(
                        atPath: ((log.path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
                            name))
                }
                // A record altered, not forked, is refused, and the log is left as it was.
                var altered = try #require(FileManager.default.contents(atPath: log.path))
                let index = try #require(altered.lastIndex(of: UInt8(ascii: "1")))
                altered[index] = UInt8(ascii: "2")
                FileManager.default.createFile(atPath: log.path, contents: altered)
                #expect(throws: ConfigurationError.self) { try CheckpointLog.repair(path: log.path, key: testAuditKey) }
                #expect(FileManager.default.contents(atPath: log.path) == altered)
            }
        }
    }
}
