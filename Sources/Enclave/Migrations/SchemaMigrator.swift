import Foundation
import Postgres

/// Applies `sql/NNNN_description.sql` files in order, as the owner role.
///
/// Each file runs in its own transaction (unless marked `-- enclave:no-transaction`) together
/// with its `enclave_meta.schema_migrations` row, so a failing file leaves nothing behind. A
/// PostgreSQL advisory lock keeps concurrent runners apart; an applied file whose checksum
/// changed is refused.
public struct SchemaMigrator: Sendable {
    /// Timeouts for the migration session.
    public struct Options: Sendable {
        /// PostgreSQL `lock_timeout` for every statement, such as `5s`.
        public var lockTimeout: String
        /// PostgreSQL `statement_timeout` for every statement, such as `10min`; `0` disables it.
        public var statementTimeout: String
        /// How long to wait for another runner to finish before giving up.
        public var lockWait: Duration

        public init(lockTimeout: String = "5s", statementTimeout: String = "10min", lockWait: Duration = .seconds(600))
        {
            self.lockTimeout = lockTimeout
            self.statementTimeout = statementTimeout
            self.lockWait = lockWait
        }
    }

    /// A row of `schema_migrations`.
    public struct AppliedMigration: Sendable, Equatable {
        public let version: Int
        public let name: String
        public let checksum: String
        public let appliedAt: Date
        public let appliedBy: String
        public let durationMilliseconds: Int
    }

    /// A migration's state, for `status`.
    public enum State: String, Sendable {
        case applied
        case pending
        /// Applied, but the file's content changed since.
        case changed
        /// Applied, but the file is gone.
        case missingFile = "missing file"
    }

    /// One line of `status`.
    public struct Entry: Sendable {
        public let version: Int
        public let name: String
        public let state: State
        /// The checksum of the file on disk, if it exists.
        public let fileChecksum: String?
        /// The applied record, if any.
        public let applied: AppliedMigration?
    }

    /// The advisory lock key shared by every runner ("enclave" in ASCII).
    static let lockKey: Int64 = 0x656E_636C_6176_65

    public let configuration: ConnectionConfiguration
    public let directory: URL
    public let options: Options
    private let log: @Sendable (String) -> Void

    public init(
        configuration: ConnectionConfiguration,
        directory: URL,
        options: Options = Options(),
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        for (name, value) in [
            ("--lock-timeout", options.lockTimeout), ("--statement-timeout", options.statementTimeout),
        ] {
            guard value.wholeMatch(of: /[0-9]+(ms|s|min|h)?/) != nil else {
                throw MigrationError(
                    code: .invalidOption,
                    message: "\(name) \(value) is not a duration such as 500ms, 5s, 10min or 1h"
                )
            }
        }
        self.configuration = configuration
        self.directory = directory
        self.options = options
        self.log = log
    }

    /// Applies every pending file, in order; returns what it applied.
    @discardableResult
    public func up() async throws -> [AppliedMigration] {
        let files = try MigrationFile.load(from: directory)
        return try await withSession { connection in
            try await acquireLock(connection)
            try await ensureTable(connection)
            let applied = try await loadApplied(connection)
            if let problem = problems(files: files, applied: applied).first { throw problem }
            let appliedVersions = Set(applied.map(\.version))
            var done: [AppliedMigration] = []
            for file in files where !appliedVersions.contains(file.version) {
                log("applying \(file.name)")
                let record = try await apply(file, connection)
                log("applied \(file.name) in \(record.durationMilliseconds) ms")
                done.append(record)
            }
            if done.isEmpty { log("nothing to apply: \(applied.count) migrations are current") }
            return done
        }
    }

    /// What `up` would apply, changing nothing.
    public func plan() async throws -> [MigrationFile] {
        let files = try MigrationFile.load(from: directory)
        return try await withSession { connection in
            let applied = try await loadApplied(connection)
            if let problem = problems(files: files, applied: applied).first { throw problem }
            let appliedVersions = Set(applied.map(\.version))
            return files.filter { !appliedVersions.contains($0.version) }
        }
    }

    /// Every file and every applied record, with its state.
    public func status() async throws -> [Entry] {
        let files = try MigrationFile.load(from: directory)
        let applied = try await withSession { try await loadApplied($0) }
        var entries: [Entry] = []
        for version in Set(files.map(\.version)).union(applied.map(\.version)).sorted() {
            let file = files.first { $0.version == version }
            let record = applied.first { $0.version == version }
            let state: State =
                switch (file, record) {
                case (.some, nil): .pending
                case (nil, .some): .missingFile
                case (.some(let file), .some(let record)): file.checksum == record.checksum ? .applied : .changed
                case (nil, nil): .pending
                }
            entries.append(
                Entry(
                    version: version,
                    name: file?.name ?? record?.name ?? "",
                    state: state,
                    fileChecksum: file?.checksum,
                    applied: record
                )
            )
        }
        return entries
    }

    /// Problems between the files and the database: changed or missing applied files, pending
    /// files older than applied ones. Empty when all is consistent.
    public func verify() async throws -> [MigrationError] {
        let files = try MigrationFile.load(from: directory)
        let applied = try await withSession { try await loadApplied($0) }
        return problems(files: files, applied: applied)
    }

    // MARK: - Internals

    private func withSession<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        let connection = try await Connection.connect(configuration)
        do {
            try await connection.query("select set_config('lock_timeout', $1, false)", [options.lockTimeout])
            try await connection.query("select set_config('statement_timeout', $1, false)", [options.statementTimeout])
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }

    private func acquireLock(_ connection: Connection) async throws {
        let deadline = ContinuousClock.now + options.lockWait
        var announced = false
        while true {
            let rows = try await connection.query("select pg_try_advisory_lock($1) as locked", [Self.lockKey])
            if try rows.first?.decode(Bool.self, "locked") == true { return }
            if !announced {
                log("waiting for another migration runner to finish")
                announced = true
            }
            guard ContinuousClock.now < deadline else {
                throw MigrationError(
                    code: .lockWaitExpired,
                    message: "another migration runner held the lock for longer than \(options.lockWait)"
                )
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func ensureTable(_ connection: Connection) async throws {
        try await connection.query("create schema if not exists enclave_meta")
        try await connection.query(
            """
            create table if not exists enclave_meta.schema_migrations (
                version integer primary key,
                name text not null,
                checksum text not null,
                applied_at timestamptz not null default now(),
                applied_by text not null default current_user,
                duration_ms bigint not null
            )
            """
        )
    }

    private func loadApplied(_ connection: Connection) async throws -> [AppliedMigration] {
        let exists = try await connection.query(
            "select to_regclass('enclave_meta.schema_migrations') is not null as present"
        )
        guard try exists.first?.decode(Bool.self, "present") == true else { return [] }
        let rows = try await connection.query(
            "select version, name, checksum, applied_at, applied_by, duration_ms from enclave_meta.schema_migrations order by version"
        )
        return try rows.map { row in
            AppliedMigration(
                version: try row.decode(Int.self, "version"),
                name: try row.decode(String.self, "name"),
                checksum: try row.decode(String.self, "checksum"),
                appliedAt: try row.decode(Date.self, "applied_at"),
                appliedBy: try row.decode(String.self, "applied_by"),
                durationMilliseconds: try row.decode(Int.self, "duration_ms")
            )
        }
    }

    private func problems(files: [MigrationFile], applied: [AppliedMigration]) -> [MigrationError] {
        var problems: [MigrationError] = []
        let newestApplied = applied.map(\.version).max() ?? 0
        for record in applied {
            guard let file = files.first(where: { $0.version == record.version }) else {
                problems.append(
                    MigrationError(
                        code: .missingFile,
                        file: record.name,
                        message: "was applied but is no longer in \(directory.lastPathComponent)/"
                    )
                )
                continue
            }
            if file.checksum != record.checksum {
                problems.append(
                    MigrationError(
                        code: .checksumMismatch,
                        file: file.name,
                        message: "changed after it was applied (applied checksum \(record.checksum.prefix(12)), "
                            + "file checksum \(file.checksum.prefix(12))): add a new migration instead of editing it"
                    )
                )
            }
        }
        let appliedVersions = Set(applied.map(\.version))
        for file in files where !appliedVersions.contains(file.version) && file.version < newestApplied {
            problems.append(
                MigrationError(
                    code: .outOfOrder,
                    file: file.name,
                    message: "is pending but a later migration is already applied; renumber it after \(newestApplied)"
                )
            )
        }
        return problems
    }

    private func apply(_ file: MigrationFile, _ connection: Connection) async throws -> AppliedMigration {
        let script = SQLScript(file.source)
        for statement in script.statements {
            let keyword = statement.text.prefix(while: { $0.isLetter }).lowercased()
            if ["begin", "commit", "rollback", "start", "end", "savepoint", "release"].contains(keyword) {
                throw MigrationError(
                    code: .badFile,
                    file: file.name,
                    line: statement.line,
                    message: "controls transactions itself; the runner wraps each file in a transaction "
                        + "(first line \(MigrationFile.noTransactionMarker) to run without one)"
                )
            }
        }
        let started = ContinuousClock.now
        func run(_ statement: SQLScript.Statement, on connection: Connection) async throws {
            do {
                try await connection.query(statement.text)
            } catch let error as PostgresError {
                var message = error.code == .server ? error.message : error.description
                if let hint = error.hint { message += " (hint: \(hint))" }
                if !file.transactional {
                    message += "; statements before this line were applied and the file is not recorded as applied"
                }
                throw MigrationError(
                    code: .statementFailed,
                    file: file.name,
                    line: statement.line(atPosition: error.position ?? 1),
                    sqlState: error.sqlState,
                    message: message
                )
            }
        }
        func record(_ transaction: Transaction) async throws -> AppliedMigration {
            let elapsed = ContinuousClock.now - started
            let milliseconds = Int(
                elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
            let rows = try await transaction.query(
                """
                insert into enclave_meta.schema_migrations (version, name, checksum, duration_ms)
                values ($1, $2, $3, $4) returning applied_at, applied_by
                """,
                [file.version, file.name, file.checksum, milliseconds]
            )
            return AppliedMigration(
                version: file.version,
                name: file.name,
                checksum: file.checksum,
                appliedAt: try rows.first?.decode(Date.self, "applied_at") ?? Date(),
                appliedBy: try rows.first?.decode(String.self, "applied_by") ?? "",
                durationMilliseconds: milliseconds
            )
        }
        if file.transactional {
            return try await connection.withTransaction { transaction in
                for statement in script.statements { try await run(statement, on: transaction.connection) }
                return try await record(transaction)
            }
        }
        for statement in script.statements { try await run(statement, on: connection) }
        return try await connection.withTransaction { try await record($0) }
    }
}
