import Foundation
import Postgres

/// One tenant's migrations: each pair under its advisory lock, applied in that tenant's context
/// with the migration timeouts, its progress kept in the ledger.
extension TenantMigrator {
    func migrate(_ tenant: UUID, _ files: [MigrationFile]) async throws -> [Outcome] {
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

    private func migrate(_ tenant: UUID, _ file: MigrationFile, _ connection: Connection) async throws -> Result {
        let ledger = TenantMigrationLedger(tenant: tenant, file: file)
        let state = try await inTenant(tenant, connection) { try await ledger.entry($0) }
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
                return try await apply(ledger, resumeFrom: state.cursor, connection)
            } catch let error as PostgresError where error.sqlState == "55P03" && attempt < options.lockRetries {
                attempt += 1
                try await Task.sleep(for: .milliseconds(250 << attempt))
            } catch {
                let message = describe(error, file: file)
                try await inTenant(tenant, connection) { try await ledger.fail(message, $0) }
                return .failed(message)
            }
        }
    }

    /// Runs the file: in one transaction with its `done` mark, or batch by batch, each batch
    /// committed with its cursor, until a batch changes nothing.
    private func apply(_ ledger: TenantMigrationLedger, resumeFrom cursor: String?, _ connection: Connection)
        async throws -> Result
    {
        let (tenant, file) = (ledger.tenant, ledger.file)
        let statements = SQLScript(file.source).statements
        guard let batchSize = file.batchSize else {
            return try await inTenant(tenant, connection) { transaction in
                try await ledger.begin(transaction)
                var rows = 0
                for statement in statements {
                    do {
                        rows += try await transaction.query(statement.text).affectedRows
                    } catch let error as PostgresError {
                        throw LocatedError(error: error, line: statement.line(atPosition: error.position ?? 1))
                    }
                }
                try await ledger.finish(rows: rows, transaction)
                return .applied(rows: rows)
            }
        }
        var cursor = cursor
        var total = 0
        let statement = statements[0]
        while true {
            let changed: Int = try await inTenant(tenant, connection) { transaction in
                try await ledger.begin(transaction)
                let result: PostgresRows
                do {
                    result = try await transaction.query(statement.text, [batchSize, cursor])
                } catch let error as PostgresError {
                    throw LocatedError(error: error, line: statement.line(atPosition: error.position ?? 1))
                }
                let changed = max(result.count, result.affectedRows)
                if changed == 0 {
                    try await ledger.finish(rows: 0, transaction)
                    return 0
                }
                if result.columns.contains("cursor") {
                    cursor = try result.compactMap { try $0.decode(String?.self, "cursor") }.max()
                }
                try await ledger.recordBatch(rows: changed, cursor: cursor, transaction)
                return changed
            }
            total += changed
            if changed == 0 { return .applied(rows: total) }
        }
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
