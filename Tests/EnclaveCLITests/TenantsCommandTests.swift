import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@Suite("enclave tenants, run as processes")
struct TenantsCommandTests {
    static let fixtures = TestEnvironment.packageRoot.appendingPathComponent("Tests/EnclaveTests/Fixtures")

    /// A migrated database with `practices` seeded practices (as the library would).
    func seeded(_ database: ScratchDatabase, practices: Int, keyFile: String) async throws -> [String: String?] {
        let env: [String: String?] = [
            "ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL"),
            "ENCLAVE_MAINT_DATABASE_URL": try database.url("ENCLAVE_MAINT_DATABASE_URL"),
            "ENCLAVE_MASTER_KEY_FILE": keyFile,
        ]
        #expect(try await CLIProcess.run(["keys", "init"], environment: env).status == 0)
        let seed = try await CLIProcess.run(
            ["tenants", "seed", "--practices", "\(practices)", "--leads", "0"], environment: env)
        #expect(seed.status == 0, "\(seed.output)")
        return env
    }

    @Test("two runners at once with --jobs 4 each apply every (practice, migration) exactly once")
    func twoRunners() async throws {
        try await ScratchDatabase.migrated { database in
            let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-kek-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: keyFile) }
            let env = try await seeded(database, practices: 60, keyFile: keyFile)
            let dir = Self.fixtures.appendingPathComponent("tenants-trivial").path
            async let first = CLIProcess.run(["tenants", "migrate", "--dir", dir, "--jobs", "4"], environment: env)
            async let second = CLIProcess.run(["tenants", "migrate", "--dir", dir, "--jobs", "4"], environment: env)
            for result in try await [first, second] { #expect(result.status == 0, "\(result.output)") }
            let superuser = try await database.connect()
            defer { Task { await superuser.close() } }
            let rows = try await superuser.query(
                """
                select count(*)::int8 as n, count(*) filter (where attempts = 1 and status = 'done')::int8 as once,
                       (select count(*) from enclave.audit_events where action = 'tenant_migration.applied')::int8 as events
                from enclave.tenant_migrations
                """)
            #expect(try rows.first?.decode(Int.self, "n") == 60)
            #expect(try rows.first?.decode(Int.self, "once") == 60)
            #expect(try rows.first?.decode(Int.self, "events") == 60)
        }
    }

    @Test("a batched backfill over 1,000,000 rows, killed midway and resumed, applies every batch exactly once")
    func killedBackfill() async throws {
        try await ScratchDatabase.migrated { database in
            let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-kek-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: keyFile) }
            let env = try await seeded(database, practices: 1, keyFile: keyFile)
            let superuser = try await database.connect()
            defer { Task { await superuser.close() } }
            // Setup only: the rows reference the practice's one source, so the per-row foreign key
            // checks (replica mode skips them) would only double the time of the insert.
            try await superuser.query("set session_replication_role = replica")
            try await superuser.query(
                """
                insert into enclave.leads (tenant_id, source_id, kind, occurred_at)
                select s.tenant_id, s.id, 'call', now() from enclave.tracking_sources s, generate_series(1, 1000000)
                """)
            try await superuser.query("reset session_replication_role")
            let dir = Self.fixtures.appendingPathComponent("tenants-backfill").path
            let process = Process()
            process.executableURL = CLIProcess.executable
            process.arguments = ["tenants", "migrate", "--dir", dir]
            var environment = ProcessInfo.processInfo.environment
            for (key, value) in env { environment[key] = value }
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let progress = "select coalesce((select batches from enclave.tenant_migrations), 0) as b"
            try await waitUntil(timeout: .seconds(300), "a few batches are committed") {
                try await superuser.query(progress).first?.decode(Int32.self, "b") ?? 0 >= 3
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let interrupted = try #require(
                try await superuser.query(
                    "select status, batches, rows_affected, batch_cursor from enclave.tenant_migrations"
                ).first)
            #expect(try interrupted.decode(String.self, "status") == "running")
            let batches = try interrupted.decode(Int32.self, "batches")
            #expect(batches < 50, "the run finished before it was killed")
            #expect(try interrupted.decode(Int64.self, "rows_affected") == Int64(batches) * 20000)
            // Committed batches match the rows changed so far: nothing half-applied.
            let changed = try await superuser.query(
                "select count(*)::int8 as n from enclave.leads where duration_seconds = 1")
            #expect(try changed.first?.decode(Int64.self, "n") == Int64(batches) * 20000)

            // The killed runner's backend ends once it notices its client is gone, releasing the
            // pair's advisory lock; until then a new runner correctly reports it busy elsewhere.
            try await waitUntil(timeout: .seconds(120), "the killed runner's backend is gone") {
                try await superuser.query("select 1 from pg_locks where locktype = 'advisory' and granted").isEmpty
            }
            let resumed = try await CLIProcess.run(["tenants", "migrate", "--dir", dir], environment: env)
            #expect(resumed.status == 0, "\(resumed.output)")
            let final = try await superuser.query(
                """
                select count(*) filter (where duration_seconds = 1)::int8 as once,
                       count(*) filter (where duration_seconds is distinct from 1)::int8 as other,
                       (select status from enclave.tenant_migrations) as status,
                       (select rows_affected from enclave.tenant_migrations) as rows
                from enclave.leads
                """)
            #expect(try final.first?.decode(Int64.self, "once") == 1_000_000)
            #expect(try final.first?.decode(Int64.self, "other") == 0)
            #expect(try final.first?.decode(String.self, "status") == "done")
            #expect(try final.first?.decode(Int64.self, "rows") == 1_000_000)
        }
    }
}
