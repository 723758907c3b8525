import Foundation
import Postgres
import Synchronization

/// Runs `tenants/NNNN_description.sql` once per tenant, as `enclave_maint`, inside that tenant's
/// context, so row-level security confines every statement to the tenant.
///
/// - Progress per (tenant, migration) lives in `enclave.tenant_migrations`; one tenant's
///   failure does not stop the others; a re-run retries failed and pending pairs and skips done.
/// - A session advisory lock per (tenant, migration) keeps concurrent runners apart: each pair
///   is applied exactly once.
/// - A plain file runs in one transaction together with its `done` mark and its
///   `tenant_migration.applied` audit event. A file marked `-- enclave:batch N` runs one batch
///   per transaction (`$1` = N, `$2` = the previous batch's cursor) until a batch changes
///   nothing; each batch commits with its cursor, so a killed run resumes where it stopped.
/// - `lock_timeout` and `statement_timeout` apply to every statement; a lock timeout is retried
///   with backoff.
public struct TenantMigrator: Sendable {
    public struct Options: Sendable {
        public var jobs: Int
        public var lockTimeout: String
        public var statementTimeout: String
        public var lockRetries: Int
        public var dryRun: Bool

        public init(
            jobs: Int = 4, lockTimeout: String = "5s", statementTimeout: String = "5min", lockRetries: Int = 3,
            dryRun: Bool = false
        ) {
            self.jobs = max(1, jobs)
            self.lockTimeout = lockTimeout
            self.statementTimeout = statementTimeout
            self.lockRetries = lockRetries
            self.dryRun = dryRun
        }
    }

    /// What happened to one (tenant, migration).
    public enum Result: Sendable, Equatable {
        case applied(rows: Int)
        case alreadyDone
        case pending
        case failed(String)
        /// Another runner holds it right now.
        case busy
    }

    public struct Outcome: Sendable, Equatable {
        public let tenant: UUID
        public let migration: String
        public let result: Result
    }

    /// Progress after each tenant.
    public struct Progress: Sendable {
        public let finished: Int
        public let failed: Int
        public let total: Int
        public let elapsed: Duration
    }

    public let maintenance: MaintenanceContext
    public let directory: URL
    public let options: Options

    public init(maintenance: MaintenanceContext, directory: URL, options: Options = Options()) throws {
        for (name, value) in [
            ("--lock-timeout", options.lockTimeout), ("--statement-timeout", options.statementTimeout),
        ] {
            guard value.wholeMatch(of: /[0-9]+(ms|s|min|h)?/) != nil else {
                throw MigrationError(
                    code: .invalidOption, message: "\(name) \(value) is not a duration such as 500ms, 5s or 10min")
            }
        }
        self.maintenance = maintenance
        self.directory = directory
        self.options = options
    }

    /// The migration files, checked.
    public func files() throws -> [MigrationFile] {
        let files = try MigrationFile.load(from: directory)
        for file in files where file.batchSize != nil {
            guard SQLScript(file.source).statements.count == 1 else {
                throw MigrationError(
                    code: .badFile, file: file.name, message: "a batched migration holds exactly one statement")
            }
        }
        return files
    }

    /// Migrates `tenants` (default: every active practice), `options.jobs` at a time.
    public func run(tenants: [UUID]? = nil, progress: @escaping @Sendable (Progress) -> Void = { _ in }) async throws
        -> [Outcome]
    {
        let files = try files()
        let ids: [UUID]
        if let tenants {
            ids = tenants
        } else {
            ids = try await maintenance.pool.query(
                "select id from enclave.practices where status = 'active' order by id"
            )
            .map { try $0.decode(UUID.self, "id") }
        }
        let queue = WorkQueue(ids)
        let started = ContinuousClock.now
        return try await withThrowingTaskGroup(of: [Outcome].self) { group in
            for _ in 0..<min(options.jobs, max(ids.count, 1)) {
                group.addTask {
                    var outcomes: [Outcome] = []
                    while let tenant = queue.next() {
                        let results = try await migrate(tenant, files)
                        outcomes += results
                        let failed = results.contains { if case .failed = $0.result { true } else { false } }
                        let counts = queue.finish(failed: failed)
                        progress(
                            Progress(
                                finished: counts.finished, failed: counts.failed, total: ids.count,
                                elapsed: ContinuousClock.now - started))
                    }
                    return outcomes
                }
            }
            return try await group.reduce(into: [Outcome]()) { $0 += $1 }
        }
    }

    /// Per migration, how many active tenants are done, failed, running and pending.
    public func status() async throws -> [(migration: String, done: Int, failed: Int, running: Int, pending: Int)] {
        let files = try files()
        let tenants =
            try await maintenance.pool.query(
                "select count(*)::int8 as n from enclave.practices where status = 'active'"
            )
            .first?.decode(Int.self, "n") ?? 0
        let rows = try await maintenance.pool.query(
            "select migration, status, tenants from enclave_private.tenant_migration_summary()")
        var counts: [String: [String: Int]] = [:]
        for row in rows {
            counts[try row.decode(String.self, "migration"), default: [:]][try row.decode(String.self, "status")] =
                try row.decode(Int.self, "tenants")
        }
        return files.map { file in
            let byStatus = counts[file.name] ?? [:]
            let done = byStatus["done"] ?? 0
            let failed = byStatus["failed"] ?? 0
            let running = byStatus["running"] ?? 0
            return (file.name, done, failed, running, max(0, tenants - done - failed - running))
        }
    }

    // MARK: - One tenant

    private func migrate(_ tenant: UUID, _ files: [MigrationFile]) async throws -> [Outcome] {
        try await maintenance.pool.withConnection { connection in
            var outcomes: [Outcome] = []
            for file in files {
                let key = "enclave.tenant_migration:\(tenant.uuidString.lowercased()):\(file.name)"
                let locked =
                    try await connection.query(
                        "select pg_try_advisory_lock(hashtextextended($1, 0)) as locked", [key]
                    ).first?.decode(Bool.self, "locked") ?? false
                guard locked else {
                    // Another runner is on this tenant; it will do the rest in order.
                    outcomes.append(Outcome(tenant: tenant, migration: file.name, result: .busy))
                    break
                }
                let result: Result
                do {
                    result = try await migrate(tenant, file, connection)
                } catch {
                    _ = try? await connection.query("select pg_advisory_unlock(hashtextextended($1, 0))", [key])
                    throw error
                }
                _ = try await connection.query("select pg_advisory_unlock(hashtextextended($1, 0))", [key])
                outcomes.append(Outcome(tenant: tenant, migration: file.name, result: result))
                switch result {
                case .applied, .alreadyDone: continue
                default: return outcomes  // later migrations wait for this one
                }
            }
            return outcomes
        }
    }

    private struct State {
        let status: String?
        let checksum: String?
        let cursor: String?
    }

    private func migrate(_ tenant: UUID, _ file: MigrationFile, _ connection: Connection) async throws -> Result {
        let state = try await inTenant(tenant, connection) { transaction in
            let row = try await transaction.query(
                "select status, checksum, batch_cursor from enclave.tenant_migrations where tenant_id = $1 and migration = $2",
                [tenant, file.name]
            ).first
            return State(
                status: try row?.decode(String.self, "status"), checksum: try row?.decode(String?.self, "checksum"),
                cursor: try row?.decode(String?.self, "batch_cursor"))
        }
        if state.status == "done" {
            if let checksum = state.checksum, checksum != file.checksum {
                return .failed("\(file.name) changed after it was applied to this tenant")
            }
            return .alreadyDone
        }
        if options.dryRun { return .pending }
        var attempt = 0
        while true {
            do {
                return try await apply(tenant, file, resumeFrom: state.cursor, connection)
            } catch let error as PostgresError where error.sqlState == "55P03" && attempt < options.lockRetries {
                attempt += 1
                try await Task.sleep(for: .milliseconds(250 << attempt))
            } catch {
                let message = describe(error, file: file)
                try await inTenant(tenant, connection) { transaction in
                    try await transaction.query(
                        """
                        insert into enclave.tenant_migrations (tenant_id, migration, status, started_at, attempts, error, checksum)
                        values ($1, $2, 'failed', now(), 1, $3, $4)
                        on conflict (tenant_id, migration) do update
                        set status = 'failed', attempts = enclave.tenant_migrations.attempts + 1, error = $3, finished_at = now()
                        """,
                        [tenant, file.name, message, file.checksum])
                }
                return .failed(message)
            }
        }
    }

    private func apply(_ tenant: UUID, _ file: MigrationFile, resumeFrom cursor: String?, _ connection: Connection)
        async throws -> Result
    {
        let statements = SQLScript(file.source).statements
        guard let batchSize = file.batchSize else {
            return try await inTenant(tenant, connection) { transaction in
                try await begin(tenant, file, transaction)
                var rows = 0
                for statement in statements {
                    do {
                        rows += try await transaction.query(statement.text).affectedRows
                    } catch let error as PostgresError {
                        throw LocatedError(error: error, line: statement.line(atPosition: error.position ?? 1))
                    }
                }
                try await finish(tenant, file, rows: rows, transaction)
                return .applied(rows: rows)
            }
        }
        var cursor = cursor
        var total = 0
        let statement = statements[0]
        while true {
            let changed: Int = try await inTenant(tenant, connection) { transaction in
                try await begin(tenant, file, transaction)
                let result: PostgresRows
                do {
                    result = try await transaction.query(statement.text, [batchSize, cursor])
                } catch let error as PostgresError {
                    throw LocatedError(error: error, line: statement.line(atPosition: error.position ?? 1))
                }
                let changed = max(result.count, result.affectedRows)
                if changed == 0 {
                    try await finish(tenant, file, rows: 0, transaction)
                    return 0
                }
                if result.columns.contains("cursor") {
                    cursor = try result.compactMap { try $0.decode(String?.self, "cursor") }.max()
                }
                try await transaction.query(
                    """
                    update enclave.tenant_migrations set rows_affected = rows_affected + $3, batches = batches + 1,
                           batch_cursor = $4
                    where tenant_id = $1 and migration = $2
                    """,
                    [tenant, file.name, changed, cursor])
                return changed
            }
            total += changed
            if changed == 0 { return .applied(rows: total) }
        }
    }

    /// Marks the pair running (counting an attempt) in this transaction.
    private func begin(_ tenant: UUID, _ file: MigrationFile, _ transaction: Transaction) async throws {
        try await transaction.query(
            """
            insert into enclave.tenant_migrations (tenant_id, migration, status, started_at, attempts, checksum)
            values ($1, $2, 'running', now(), 1, $3)
            on conflict (tenant_id, migration) do update
            set status = 'running', error = null, checksum = $3,
                attempts = enclave.tenant_migrations.attempts
                    + case when enclave.tenant_migrations.status = 'running' then 0 else 1 end
            """,
            [tenant, file.name, file.checksum])
    }

    private func finish(_ tenant: UUID, _ file: MigrationFile, rows: Int, _ transaction: Transaction) async throws {
        try await transaction.query(
            """
            update enclave.tenant_migrations set status = 'done', finished_at = now(), rows_affected = rows_affected + $3
            where tenant_id = $1 and migration = $2
            """,
            [tenant, file.name, rows])
        try await transaction.audit(
            AuditEvent(
                tenant: tenant, action: .tenantMigrationApplied, objectType: "tenant_migration", objectID: file.name))
    }

    /// One transaction in `tenant`'s context with the migration timeouts.
    @discardableResult
    private func inTenant<T: Sendable>(
        _ tenant: UUID, _ connection: Connection, _ body: (Transaction) async throws -> T
    ) async throws -> T {
        try await connection.withTransaction { transaction in
            try await transaction.query(
                """
                select set_config('enclave.maint_tenant', $1, true), set_config('lock_timeout', $2, true),
                       set_config('statement_timeout', $3, true)
                """,
                [tenant.uuidString.lowercased(), options.lockTimeout, options.statementTimeout])
            return try await body(transaction)
        }
    }

    private func describe(_ error: any Error, file: MigrationFile) -> String {
        if let located = error as? LocatedError {
            return MigrationError(
                code: .statementFailed, file: file.name, line: located.line, sqlState: located.error.sqlState,
                message: located.error.code == .server ? located.error.message : located.error.description
            ).description
        }
        return "\(file.name): \(error)"
    }
}

/// A statement's error with the file line it came from.
struct LocatedError: Error {
    let error: PostgresError
    let line: Int
}

/// Tenants handed out to workers, with counts for progress.
fileprivate final class WorkQueue: Sendable {
    private struct State {
        var next = 0
        var finished = 0
        var failed = 0
    }

    private let items: [UUID]
    private let state = Locked(State())

    init(_ items: [UUID]) { self.items = items }

    func next() -> UUID? {
        state.withLock { state in
            guard state.next < items.count else { return nil }
            defer { state.next += 1 }
            return items[state.next]
        }
    }

    func finish(failed: Bool) -> (finished: Int, failed: Int) {
        state.withLock { state in
            state.finished += 1
            if failed { state.failed += 1 }
            return (state.finished, state.failed)
        }
    }
}

/// A lock-protected value.
fileprivate final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
