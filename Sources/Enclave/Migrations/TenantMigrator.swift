import Foundation
import Postgres

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
        try MigrationError.checkTimeouts(lockTimeout: options.lockTimeout, statementTimeout: options.statementTimeout)
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
        let failures = Locked(0)
        let perTenant = try await maintenance.forEachTenant(
            ids, jobs: options.jobs,
            progress: { (state: MaintenanceContext.Progress, results: [Outcome]) in
                let failed = results.contains { if case .failed = $0.result { true } else { false } }
                let failedSoFar = failures.withLock { count in
                    if failed { count += 1 }
                    return count
                }
                progress(
                    Progress(finished: state.finished, failed: failedSoFar, total: state.total, elapsed: state.elapsed))
            },
            { tenant in try await migrate(tenant, files) })
        return perTenant.flatMap { $0 }
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
}
