/// A unit of work on one connection, between `BEGIN` and `COMMIT`.
///
/// Obtained from `withTransaction`; it is valid only inside that closure.
public struct Transaction: Sendable {
    /// The connection the transaction runs on.
    public let connection: Connection

    /// Runs one parameterized statement inside the transaction.
    @discardableResult
    public func query(
        _ sql: String,
        _ bindings: [any PostgresEncodable] = [],
        timeout: Duration? = nil
    ) async throws -> PostgresRows {
        try await connection.query(sql, bindings, timeout: timeout)
    }

    /// Runs one parameterized statement and returns how many rows it affected.
    @discardableResult
    public func execute(
        _ sql: String,
        _ bindings: [any PostgresEncodable] = [],
        timeout: Duration? = nil
    ) async throws -> Int {
        try await connection.execute(sql, bindings, timeout: timeout)
    }
}

/// Transaction isolation levels.
public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

extension Connection {
    /// Runs `body` in a transaction: commits when it returns, rolls back when it throws or when
    /// the task is cancelled.
    ///
    /// Every transaction commits durably: it sets `synchronous_commit` on for itself (in the same
    /// round trip as `BEGIN`), whatever the server's or the session's setting, so that a commit
    /// that returned, and any answer given after it, survives a crash of PostgreSQL.
    @discardableResult
    public func withTransaction<T: Sendable>(
        isolation: IsolationLevel = .readCommitted,
        _ body: (Transaction) async throws -> T
    ) async throws -> T {
        _ = try await run(
            "BEGIN ISOLATION LEVEL \(isolation.rawValue); SET LOCAL synchronous_commit TO on", [], timeout: nil,
            honorsCancellation: true, simple: true)
        let value: T
        do {
            value = try await body(Transaction(connection: self))
            try Task.checkCancellation()
        } catch {
            await rollback()
            throw error
        }
        do {
            _ = try await run("COMMIT", [], timeout: nil, honorsCancellation: false)
        } catch {
            await rollback()
            throw error
        }
        return value
    }

    /// Rolls back even when the task is cancelled; a broken connection is left to the pool.
    private func rollback() async {
        _ = try? await run("ROLLBACK", [], timeout: nil, honorsCancellation: false)
    }
}
