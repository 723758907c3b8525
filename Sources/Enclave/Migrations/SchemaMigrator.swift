import Foundation
import Postgres

/// Applies `sql/NNNN_description.sql` files in order, then the function files of
/// `sql/functions/`, as the owner role.
///
/// Each numbered file runs in its own transaction (unless marked `-- enclave:no-transaction`)
/// together with its `enclave_meta.schema_migrations` row, so a failing file leaves nothing
/// behind; an applied file whose checksum changed is refused, unless `sql/rewritten` lists the
/// checksum it was applied with. Function files (and the policies, `functions/policies.sql`) are
/// source, not history, as Flyway's repeatable migrations are: they apply after every numbered
/// file, each in its own transaction, recorded in `enclave_meta.function_migrations`: those whose
/// checksum changed, and all of them when a numbered file was applied (a new table needs its
/// policies). A PostgreSQL advisory lock keeps runners apart.
public struct SchemaMigrator: Sendable {
    /// The advisory lock key shared by every runner ("enclave" in ASCII).
    static let lockKey: Int64 = 0x656E_636C_6176_65

    public let configuration: ConnectionConfiguration
    public let directory: URL
    public let options: Options
    let log: @Sendable (String) -> Void

    public init(
        configuration: ConnectionConfiguration,
        directory: URL,
        options: Options = Options(),
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        try MigrationError.checkTimeouts(lockTimeout: options.lockTimeout, statementTimeout: options.statementTimeout)
        self.configuration = configuration
        self.directory = directory
        self.options = options
        self.log = log
    }

    /// Applies every pending numbered file in order and every changed function file; returns
    /// what it applied.
    @discardableResult
    public func up() async throws -> Outcome {
        let files = try MigrationFile.load(from: directory)
        let functionFiles = try FunctionFile.load(from: directory)
        return try await withSession { connection in
            try await acquireLock(connection)
            try await ensureTables(connection)
            let applied = try await loadApplied(connection)
            if let problem = problems(files: files, applied: applied).first { throw problem }
            let functionChecksums = try await loadAppliedFunctions(connection).mapValues(\.checksum)
            var migrations: [AppliedMigration] = []
            var functions: [AppliedFunctionFile] = []
            let appliedVersions = Set(applied.map(\.version))
            for file in files where !appliedVersions.contains(file.version) {
                log("applying \(file.name)")
                let record = try await apply(file, connection)
                log("applied \(file.name) in \(record.durationMilliseconds) ms")
                migrations.append(record)
            }
            let rewritten = Self.rewritten(files: files, applied: applied)
            let everything = !migrations.isEmpty || !rewritten.isEmpty
            for file in functionFiles where everything || functionChecksums[file.name] != file.checksum {
                log("applying \(file.name)")
                let record = try await apply(file, connection)
                log("applied \(file.name) in \(record.durationMilliseconds) ms")
                functions.append(record)
            }
            for file in rewritten {
                try await connection.query(
                    "update enclave_meta.schema_migrations set checksum = $1 where version = $2",
                    [file.checksum, file.version])
                log("recorded the rewritten \(file.name) (sql/\(MigrationFile.rewrittenListName))")
            }
            if migrations.isEmpty && functions.isEmpty {
                log(
                    "nothing to apply: \(applied.count) migrations and \(functionFiles.count) function files are current"
                )
            }
            return Outcome(migrations: migrations, functions: functions)
        }
    }

    /// What `up` would apply, changing nothing.
    public func plan() async throws -> Plan {
        let files = try MigrationFile.load(from: directory)
        let functionFiles = try FunctionFile.load(from: directory)
        return try await withSession { connection in
            let applied = try await loadApplied(connection)
            if let problem = problems(files: files, applied: applied).first { throw problem }
            let appliedVersions = Set(applied.map(\.version))
            let functionChecksums = try await loadAppliedFunctions(connection).mapValues(\.checksum)
            let migrations = files.filter { !appliedVersions.contains($0.version) }
            let everything = !migrations.isEmpty || !Self.rewritten(files: files, applied: applied).isEmpty
            return Plan(
                migrations: migrations,
                functions: functionFiles.filter { everything || functionChecksums[$0.name] != $0.checksum }
            )
        }
    }

    /// Every file and every applied record, with its state.
    public func status() async throws -> Status {
        let files = try MigrationFile.load(from: directory)
        let functionFiles = try FunctionFile.load(from: directory)
        let (applied, appliedFunctions) = try await withSession {
            (try await loadApplied($0), try await loadAppliedFunctions($0))
        }
        var entries: [Entry] = []
        for version in Set(files.map(\.version)).union(applied.map(\.version)).sorted() {
            let file = files.first { $0.version == version }
            let record = applied.first { $0.version == version }
            let state: State =
                switch (file, record) {
                case (.some, nil): .pending
                case (nil, .some): .missingFile
                case (.some(let file), .some(let record)):
                    file.checksum == record.checksum
                        ? .applied : file.previousChecksums.contains(record.checksum) ? .rewritten : .changed
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
        var functions = functionFiles.map { file in
            let record = appliedFunctions[file.name]
            let state: FunctionState =
                record == nil ? .pending : record?.checksum == file.checksum ? .applied : .changed
            return FunctionEntry(name: file.name, state: state, fileChecksum: file.checksum, applied: record)
        }
        for (name, record) in appliedFunctions.sorted(by: { $0.key < $1.key })
        where !functionFiles.contains(where: { $0.name == name }) {
            functions.append(FunctionEntry(name: name, state: .unlisted, fileChecksum: nil, applied: record))
        }
        return Status(migrations: entries, functions: functions)
    }

    /// Problems between the files and the database: changed or missing applied files, pending
    /// files older than applied ones, and functions that differ from their applied file (changed
    /// by hand), are missing, or that no file defines. Empty when all is consistent.
    public func verify() async throws -> [MigrationError] {
        let files = try MigrationFile.load(from: directory)
        let functionFiles = try FunctionFile.load(from: directory)
        return try await withSession { connection in
            let applied = try await loadApplied(connection)
            var found = problems(files: files, applied: applied)
            let appliedFunctions = try await loadAppliedFunctions(connection)
            guard !appliedFunctions.isEmpty || !functionFiles.isEmpty else { return found }
            try await acquireLock(connection)
            found += try await catalogProblems(functionFiles, appliedFunctions: appliedFunctions, connection)
            return found
        }
    }

    // MARK: - Internals

    func withSession<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
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

    func acquireLock(_ connection: Connection) async throws {
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

    private func ensureTables(_ connection: Connection) async throws {
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
        try await connection.query(
            """
            create table if not exists enclave_meta.function_migrations (
                id bigint generated always as identity primary key,
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

    /// The applied files whose record holds a checksum that `rewritten` lists for them.
    static func rewritten(files: [MigrationFile], applied: [AppliedMigration]) -> [MigrationFile] {
        files.filter { file in
            applied.contains { $0.version == file.version && file.previousChecksums.contains($0.checksum) }
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
            if file.checksum != record.checksum && !file.previousChecksums.contains(record.checksum) {
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
}
