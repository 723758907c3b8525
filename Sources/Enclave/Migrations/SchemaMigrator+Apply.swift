import Foundation
import Postgres

extension SchemaMigrator {
    /// Applies one numbered file: in one transaction with its record, or statement by statement
    /// when it is marked `-- enclave:no-transaction`.
    func apply(_ file: MigrationFile, _ connection: Connection) async throws -> AppliedMigration {
        let script = try checkedScript(file.source, name: file.name)
        let started = ContinuousClock.now
        func record(_ transaction: Transaction) async throws -> AppliedMigration {
            let milliseconds = Self.milliseconds(since: started)
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
                try await run(script, name: file.name, on: transaction.connection)
                return try await record(transaction)
            }
        }
        try await run(script, name: file.name, on: connection, partial: true)
        return try await connection.withTransaction { try await record($0) }
    }

    /// Applies one function file in one transaction with its history row.
    func apply(_ file: FunctionFile, _ connection: Connection) async throws -> AppliedFunctionFile {
        let script = try checkedScript(file.source, name: file.name)
        let started = ContinuousClock.now
        return try await connection.withTransaction { transaction in
            try await run(script, name: file.name, on: transaction.connection)
            let milliseconds = Self.milliseconds(since: started)
            let rows = try await transaction.query(
                """
                insert into enclave_meta.function_migrations (name, checksum, duration_ms)
                values ($1, $2, $3) returning applied_at, applied_by
                """,
                [file.name, file.checksum, milliseconds]
            )
            return AppliedFunctionFile(
                name: file.name,
                checksum: file.checksum,
                appliedAt: try rows.first?.decode(Date.self, "applied_at") ?? Date(),
                appliedBy: try rows.first?.decode(String.self, "applied_by") ?? "",
                durationMilliseconds: milliseconds
            )
        }
    }

    /// The latest application of each function file, by name.
    func loadAppliedFunctions(_ connection: Connection) async throws -> [String: AppliedFunctionFile] {
        let exists = try await connection.query(
            "select to_regclass('enclave_meta.function_migrations') is not null as present"
        )
        guard try exists.first?.decode(Bool.self, "present") == true else { return [:] }
        let rows = try await connection.query(
            """
            select distinct on (name) name, checksum, applied_at, applied_by, duration_ms
            from enclave_meta.function_migrations order by name, id desc
            """
        )
        var latest: [String: AppliedFunctionFile] = [:]
        for row in rows {
            let record = AppliedFunctionFile(
                name: try row.decode(String.self, "name"),
                checksum: try row.decode(String.self, "checksum"),
                appliedAt: try row.decode(Date.self, "applied_at"),
                appliedBy: try row.decode(String.self, "applied_by"),
                durationMilliseconds: try row.decode(Int.self, "duration_ms")
            )
            latest[record.name] = record
        }
        return latest
    }

    /// The file's statements; refuses a file that controls transactions itself.
    func checkedScript(_ source: String, name: String) throws -> SQLScript {
        let script = SQLScript(source)
        for statement in script.statements {
            let keyword = statement.text.prefix(while: { $0.isLetter }).lowercased()
            if ["begin", "commit", "rollback", "start", "end", "savepoint", "release"].contains(keyword) {
                throw MigrationError(
                    code: .badFile,
                    file: name,
                    line: statement.line,
                    message: "controls transactions itself; the runner wraps each file in a transaction "
                        + "(first line \(MigrationFile.noTransactionMarker) to run without one)"
                )
            }
        }
        return script
    }

    /// Runs every statement of `script`; a failure names the file, the line and the SQLSTATE.
    /// `partial` says that earlier statements stay applied (no transaction).
    func run(_ script: SQLScript, name: String, on connection: Connection, partial: Bool = false) async throws {
        for statement in script.statements {
            do {
                try await connection.query(statement.text)
            } catch let error as PostgresError {
                var message = error.code == .server ? error.message : error.description
                if let hint = error.hint { message += " (hint: \(hint))" }
                if partial {
                    message += "; statements before this line were applied and the file is not recorded as applied"
                }
                throw MigrationError(
                    code: .statementFailed,
                    file: name,
                    line: statement.line(atPosition: error.position ?? 1),
                    sqlState: error.sqlState,
                    message: message
                )
            }
        }
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int {
        let elapsed = ContinuousClock.now - start
        return Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
    }
}
