import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

/// The previous release: the last commit that landed before function files moved after every
/// numbered file (issue 24). Its `sql/` is read from git history, so a clone needs its history.
let previousRelease = "54e13cb"

/// What a schema is, as the catalog says: policies, functions (definition and grants), relations
/// (kind, row-level security, grants), columns, indexes, constraints and triggers, one line each.
let catalogQuery = """
    select 'policy ' || tablename || '.' || policyname || ' ' || cmd || ' ' || array_to_string(roles, ',') || ' '
           || coalesce(qual, '-') || ' ' || coalesce(with_check, '-') as line
    from pg_policies where schemaname like 'enclave%'
    union all
    select 'function ' || p.oid::regprocedure::text || ' ' || md5(pg_get_functiondef(p.oid)) || ' '
           || coalesce(array_to_string(p.proacl, ','), '')
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname like 'enclave%'
    union all
    select 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' rls='
           || c.relrowsecurity::text || '/' || c.relforcerowsecurity::text || ' ' || coalesce(array_to_string(c.relacl, ','), '')
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname like 'enclave%'
    union all
    select 'column ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type || ' '
           || is_nullable || ' ' || coalesce(column_default, '')
    from information_schema.columns where table_schema like 'enclave%' and table_schema <> 'enclave_meta'
    union all
    select 'index ' || indexdef from pg_indexes where schemaname like 'enclave%'
    union all
    select 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    from pg_constraint where connamespace::regnamespace::text like 'enclave%'
    union all
    select 'trigger ' || tgenabled::text || ' ' || pg_get_triggerdef(oid) from pg_trigger where not tgisinternal
    """

/// The catalog of a database, as a set of lines.
func catalog(of database: ScratchDatabase) async throws -> Set<String> {
    let connection = try await database.connect()
    defer { Task { await connection.close() } }
    return Set(try await connection.query(catalogQuery).map { try $0.decode(String.self, "line") })
}

/// `sql/` as it was at `commit`, in a new temporary directory.
func schemaDirectory(at commit: String) throws -> URL {
    let target = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-sql-\(commit)-\(UUID())")
    try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = [
        "-c", "git -C \"$0\" archive \"$1\" sql | tar -x -C \"$2\"", TestEnvironment.packageRoot.path, commit,
        target.path,
    ]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestSetupError("cannot read sql/ at \(commit) from git history (a shallow clone?)")
    }
    return target.appendingPathComponent("sql")
}

/// Migrates `database` with `directory` as the previous release's runner did: a numbered file
/// marked `-- enclave:after-functions` ran after the function files, which ran again at the end
/// where they had changed. Each file in a transaction with its history row.
func migrateAsPreviousRelease(_ database: ScratchDatabase, directory: URL) async throws {
    // The history tables, from an empty directory.
    let empty = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-empty-\(UUID())")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: empty) }
    try await migrator(database, directory: empty).up()
    let connection = try await Connection.connect(database.configuration("ENCLAVE_ADMIN_DATABASE_URL"))
    defer { Task { await connection.close() } }
    let functions = try FunctionFile.load(from: directory)
    var functionsApplied = false
    func applyFunctions() async throws {
        guard !functionsApplied else { return }
        functionsApplied = true
        for file in functions {
            try await connection.withTransaction { transaction in
                for statement in SQLScript(file.source).statements { try await transaction.query(statement.text) }
                try await transaction.query(
                    "insert into enclave_meta.function_migrations (name, checksum, duration_ms) values ($1, $2, 0)",
                    [file.name, file.checksum])
            }
        }
    }
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
    for name in names.sorted() {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        let source = String(decoding: data, as: UTF8.self)
        if source.hasPrefix("-- enclave:after-functions") { try await applyFunctions() }
        try await connection.withTransaction { transaction in
            for statement in SQLScript(source).statements { try await transaction.query(statement.text) }
            try await transaction.query(
                "insert into enclave_meta.schema_migrations (version, name, checksum, duration_ms) values ($1, $2, $3, 0)",
                [Int(name.prefix(4)) ?? 0, name, SHA256.hexDigest(data)])
        }
    }
    try await applyFunctions()
}

@Suite("Schema upgrades: a database of the previous release ends like a fresh one")
struct SchemaUpgradeTests {
    @Test("a database migrated by the previous release, then by this one, has a fresh database's catalog")
    func upgradeMatchesFresh() async throws {
        let previous = try schemaDirectory(at: previousRelease)
        defer { try? FileManager.default.removeItem(at: previous.deletingLastPathComponent()) }
        let fresh = try await ScratchDatabase.with { database in
            try await migrator(database).up()
            return try await catalog(of: database)
        }
        try await ScratchDatabase.with { database in
            try await migrateAsPreviousRelease(database, directory: previous)
            let before = try await catalog(of: database)
            // Leads of the previous release: the upgrade builds the agency figures' rollup
            // (sql/0024_lead_figures.sql, functions/figures.sql) from them.
            let superuser = try await database.connect()
            defer { Task { await superuser.close() } }
            try await superuser.query(
                """
                with practice as (insert into enclave.practices (name) values ('Before') returning id),
                source as (insert into enclave.tracking_sources (tenant_id, kind, label)
                           select id, 'call', 'Line' from practice returning tenant_id, id)
                insert into enclave.leads (tenant_id, source_id, kind, occurred_at, source, duration_seconds, qualification)
                select tenant_id, id, 'call', now() - n * interval '1 day', 'google', 60, (array['spam', null])[n % 2 + 1]
                from source, generate_series(1, 5) n
                """)
            let outcome = try await migrator(database).up()
            let rolled = try await superuser.query(
                "select sum(leads)::int8 as leads, sum(spam)::int8 as spam, sum(call_seconds)::int8 as seconds from enclave.lead_figures"
            ).first
            #expect(try rolled?.decode(Int.self, "leads") == 5)
            #expect(try rolled?.decode(Int.self, "spam") == 2)
            #expect(try rolled?.decode(Int.self, "seconds") == 300)
            // The function files all ran again, after the numbered files of this release.
            #expect(outcome.functions.count == (try FunctionFile.load(from: schemaDirectory)).count)
            let upgraded = try await catalog(of: database)
            #expect(upgraded.subtracting(fresh).sorted() == [], "only in the upgraded database")
            #expect(fresh.subtracting(upgraded).sorted() == [], "only in the fresh database")
            // The check can fail: the two releases' schemas do differ.
            #expect(before != upgraded)
            // Moving the policies to functions/policies.sql changed none of them (issue 24). A
            // release that changes a policy on purpose says so here: this one adds the figures
            // role's read of leads and ad spend (issue 27, sql/0021_agency_figures.sql,
            // sql/0023_figures_value.sql) ...
            // ... and the rollup the figures are read from (sql/0024_lead_figures.sql), a tenant
            // table like the others; and a practice's keyword sets (sql/0027_transcripts.sql).
            let maintenance =
                "(tenant_id = ( SELECT enclave_private.reachable_tenant('maintenance'::text) AS reachable_tenant))"
            let caller = "(tenant_id = ( SELECT enclave_private.caller_tenant() AS caller_tenant))"
            let policiesBefore = before.filter { $0.hasPrefix("policy ") }
            let policiesAfter = upgraded.filter { $0.hasPrefix("policy ") }
            #expect(policiesBefore.subtracting(policiesAfter).isEmpty, "a policy of the previous release is gone")
            #expect(
                policiesAfter.subtracting(policiesBefore).sorted() == [
                    "policy ad_spend.figures_select SELECT enclave_figures true -",
                    "policy keyword_sets.app_select SELECT enclave_app "
                        + "(tenant_id = ( SELECT enclave_private.reachable_tenant('leads.read'::text) AS reachable_tenant)) -",
                    "policy keyword_sets.maint_delete DELETE enclave_maint \(maintenance) -",
                    "policy keyword_sets.maint_insert INSERT enclave_maint - \(maintenance)",
                    "policy keyword_sets.maint_select SELECT enclave_maint \(maintenance) -",
                    "policy keyword_sets.maint_update UPDATE enclave_maint \(maintenance) \(maintenance)",
                    "policy keyword_sets.owner_delete DELETE enclave_owner \(caller) -",
                    "policy keyword_sets.owner_insert INSERT enclave_owner - \(caller)",
                    "policy keyword_sets.owner_select SELECT enclave_owner \(caller) -",
                    "policy keyword_sets.owner_update UPDATE enclave_owner \(caller) \(caller)",
                    "policy lead_figures.figures_insert INSERT enclave_figures - true",
                    "policy lead_figures.figures_select SELECT enclave_figures true -",
                    "policy lead_figures.figures_update UPDATE enclave_figures true true",
                    "policy lead_figures.maint_delete DELETE enclave_maint \(maintenance) -",
                    "policy lead_figures.maint_insert INSERT enclave_maint - \(maintenance)",
                    "policy lead_figures.maint_select SELECT enclave_maint \(maintenance) -",
                    "policy lead_figures.maint_update UPDATE enclave_maint \(maintenance) \(maintenance)",
                    "policy lead_figures.owner_delete DELETE enclave_owner \(caller) -",
                    "policy lead_figures.owner_insert INSERT enclave_owner - \(caller)",
                    "policy lead_figures.owner_select SELECT enclave_owner \(caller) -",
                    "policy lead_figures.owner_update UPDATE enclave_owner \(caller) \(caller)",
                    "policy leads.figures_select SELECT enclave_figures true -",
                ], "the policies differ from the previous release's")
            let status = try await migrator(database).status()
            #expect(status.migrations.allSatisfy { $0.state == .applied })
            #expect(try await migrator(database).verify().isEmpty)
        }
    }

    @Test("a rewritten migration is accepted only with the checksum sql/rewritten lists for it")
    func rewrittenNeedsItsListedChecksum() async throws {
        try await ScratchDatabase.with { database in
            let previous = try schemaDirectory(at: previousRelease)
            defer { try? FileManager.default.removeItem(at: previous.deletingLastPathComponent()) }
            try await migrateAsPreviousRelease(database, directory: previous)
            let directory = try copyOfDirectory(schemaDirectory)
            defer { try? FileManager.default.removeItem(at: directory) }
            let list = directory.appendingPathComponent("rewritten")
            let text = try String(contentsOf: list, encoding: .utf8)
            try text.split(separator: "\n").filter { !$0.hasPrefix("0007") }.joined(separator: "\n")
                .write(to: list, atomically: true, encoding: .utf8)
            // (verify also names the previous release's functions that this one dropped: up is refused.)
            let problems = try await migrator(database, directory: directory).verify()
                .filter { $0.code == .checksumMismatch }
            #expect(problems.map(\.file) == ["0007_per_command_policies.sql"])
            await #expect {
                try await migrator(database, directory: directory).up()
            } throws: { error in
                (error as? MigrationError)?.file == "0007_per_command_policies.sql"
            }
            // With the list intact, up accepts the same database.
            #expect(try await migrator(database).up().functions.isEmpty == false)
        }
    }
}
