import CLibPQ
import Foundation
import Synchronization

/// One libpq connection. Its blocking calls run on a thread of its own, never on Swift's
/// cooperative pool; cancelling the calling task cancels the running statement on the server.
///
/// A connection serves one task at a time: use a `ConnectionPool` to share connections.
public final class Connection: @unchecked Sendable {
    // `pgconn` is read and written only on `thread`; everything else is immutable or locked.
    private nonisolated(unsafe) var pgconn: OpaquePointer?
    private let thread: ConnectionThread
    private let canceller: StatementCanceller
    private let condition = Mutex(Condition())
    /// The configuration this connection was opened with (its description hides the password).
    public let configuration: ConnectionConfiguration
    /// What the connection's pool counts and decides for all its connections.
    let pool: PoolShared?
    /// The statements prepared on this connection (read and written only on `thread`).
    private nonisolated(unsafe) var prepared: Set<String> = []
    /// What the server's notices said during the current statement.
    private let notices: Notices

    struct Condition {
        var broken = false
        var idleOutsideTransaction = true
    }

    private init(
        pgconn: OpaquePointer, thread: ConnectionThread, configuration: ConnectionConfiguration,
        pool: PoolShared?, notices: Notices
    ) {
        self.pgconn = pgconn
        self.notices = notices
        self.thread = thread
        self.configuration = configuration
        self.pool = pool
        self.canceller = StatementCanceller(connection: pgconn)
    }

    deinit {
        canceller.invalidate()
        let handle = UnsafeConnectionHandle(pointer: pgconn)
        thread.enqueue { if let pointer = handle.pointer { PQfinish(pointer) } }
        thread.stop()
    }

    /// Opens a connection. Errors never contain the password.
    public static func connect(_ configuration: ConnectionConfiguration) async throws -> Connection {
        try await connect(configuration, pool: nil)
    }

    static func connect(_ configuration: ConnectionConfiguration, pool: PoolShared?) async throws
        -> Connection
    {
        var configuration = configuration
        if configuration.value(for: "connect_timeout") == nil {
            configuration = configuration.setting("connect_timeout", to: "10")
        }
        if configuration.value(for: "application_name") == nil {
            configuration = configuration.setting("application_name", to: "enclave")
        }
        configuration = configuration.setting("client_encoding", to: "UTF8")
        let thread = ConnectionThread(name: "enclave.postgres")
        let settings = configuration
        let notices = Notices()
        do {
            let handle = try await thread.run { try openBlocking(settings, notices) }
            guard let pointer = handle.pointer else {
                throw PostgresError(code: .connectionFailed, message: "no connection")
            }
            return Connection(
                pgconn: pointer, thread: thread, configuration: configuration, pool: pool, notices: notices)
        } catch {
            thread.stop()
            throw error
        }
    }

    /// Runs one parameterized statement and returns its rows.
    ///
    /// - Parameters:
    ///   - sql: one SQL statement with `$1`, `$2`, … placeholders; never built from input.
    ///   - bindings: the parameter values, in order.
    ///   - timeout: cancel the statement on the server if it runs longer.
    @discardableResult
    public func query(
        _ sql: String,
        _ bindings: [any PostgresEncodable] = [],
        timeout: Duration? = nil
    ) async throws -> PostgresRows {
        try await run(sql, bindings, timeout: timeout, honorsCancellation: true)
    }

    /// Runs one parameterized statement and returns how many rows it affected.
    @discardableResult
    public func execute(
        _ sql: String,
        _ bindings: [any PostgresEncodable] = [],
        timeout: Duration? = nil
    ) async throws -> Int {
        try await query(sql, bindings, timeout: timeout).affectedRows
    }

    /// True once the connection broke; a pool discards it.
    public var isBroken: Bool { condition.withLock { $0.broken } }

    /// True when the connection is not inside a transaction block.
    var isIdleOutsideTransaction: Bool { condition.withLock { $0.idleOutsideTransaction } }

    /// Reports whether an idle connection still works. The server sends nothing to an idle
    /// connection unprompted (Enclave uses no LISTEN) except the FATAL message and EOF of a
    /// terminated backend, so a readable socket means the connection is dying.
    func checkHealth() async -> Bool {
        let healthy =
            (try? await thread.run { [self] () -> Bool in
                guard let pgconn, PQstatus(pgconn) == CONNECTION_OK, PQtransactionStatus(pgconn) == PQTRANS_IDLE else {
                    return false
                }
                var descriptor = pollfd(fd: PQsocket(pgconn), events: Int16(POLLIN), revents: 0)
                return poll(&descriptor, 1, 0) == 0
            }) ?? false
        if !healthy { condition.withLock { $0.broken = true } }
        return healthy
    }

    /// Closes the connection.
    public func close() async {
        canceller.invalidate()
        _ = try? await thread.run { [self] in
            if let pgconn { PQfinish(pgconn) }
            pgconn = nil
        }
        condition.withLock { $0.broken = true }
        thread.stop()
    }

    /// Runs `sql`: one statement with bound parameters, or, when `simple`, a fixed script of
    /// several statements without parameters in one round trip (the simple query protocol;
    /// never for text that holds input).
    func run(
        _ sql: String,
        _ bindings: [any PostgresEncodable],
        timeout: Duration?,
        honorsCancellation: Bool,
        simple: Bool = false
    ) async throws -> PostgresRows {
        precondition(!simple || bindings.isEmpty, "a simple query has no parameters")
        let parameters = try bindings.map { (type: type(of: $0).postgresType, bytes: try $0.postgresBinary()) }
        let ticket = StatementTicket()
        let work = { @Sendable [self] () throws -> PostgresRows in
            try executeBlocking(sql, parameters, ticket: ticket, timeout: timeout, simple: simple)
        }
        guard honorsCancellation else { return try await thread.run(work) }
        try Task.checkCancellation()
        return try await withTaskCancellationHandler {
            try await thread.run(work)
        } onCancel: {
            canceller.cancel(ticket, reason: .task)
        }
    }

    private func executeBlocking(
        _ sql: String,
        _ parameters: [(type: PostgresType, bytes: [UInt8]?)],
        ticket: StatementTicket,
        timeout: Duration?,
        simple: Bool
    ) throws -> PostgresRows {
        guard let pgconn else { throw PostgresError(code: .connectionLost, message: "the connection is closed") }
        try canceller.begin(ticket)
        if let timeout {
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [canceller] in
                canceller.cancel(ticket, reason: .timeout)
            }
        }
        notices.commitNotReplicated = false
        let result = simple ? count(PQexec(pgconn, sql)) : execute(pgconn, sql, parameters)
        canceller.finish()
        if notices.commitNotReplicated {
            // PostgreSQL reports a commit whose wait for the synchronous standby was cancelled as
            // done, with a warning: it is on this server only and could be lost in a failover.
            // Never report it as done; the connection goes, the caller retries (idempotently),
            // and the retry's commit waits for the standby (see ingest_lead).
            if let result { PQclear(result) }
            condition.withLock { $0.broken = true }
            throw PostgresError(
                code: .connectionLost,
                message: "the commit's wait for the synchronous standby was cancelled; it may not survive a failover")
        }
        let status = PQstatus(pgconn)
        let transaction = PQtransactionStatus(pgconn)
        condition.withLock {
            $0.broken = status != CONNECTION_OK
            $0.idleOutsideTransaction = transaction == PQTRANS_IDLE
        }
        guard let result else {
            let message = String(cString: PQerrorMessage(pgconn)).trimmingCharacters(in: .whitespacesAndNewlines)
            throw PostgresError(code: status == CONNECTION_OK ? .protocolViolation : .connectionLost, message: message)
        }
        let handle = ResultHandle(result)
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(handle: handle)
        default:
            var error = PostgresError(result: result)
            if status != CONNECTION_OK { error.code = .connectionLost }
            // A write refused as read-only (25006): this server became a standby after a failover
            // (no Enclave transaction is read-only). The pool discards the connection; the next
            // connects to the new primary (target_session_attrs=read-write).
            if error.isReadOnlyServer { condition.withLock { $0.broken = true } }
            if error.isQueryCanceled, let reason = ticket.reason {
                switch reason {
                case .task: throw CancellationError()
                case .timeout:
                    error.code = .statementTimeout
                    error.message = "statement cancelled after its timeout"
                }
            }
            throw error
        }
    }

    /// Runs a parameterized statement: prepared once on this connection and then executed by
    /// name when the pool prepares statements, else parsed every time (the unnamed statement).
    /// A prepared statement the server no longer knows (26000: a pooler moved the session)
    /// turns preparing off for the whole pool and runs the statement unnamed.
    private func execute(
        _ pgconn: OpaquePointer, _ sql: String, _ parameters: [(type: PostgresType, bytes: [UInt8]?)]
    ) -> OpaquePointer? {
        guard let pool, pool.preparing.load(ordering: .relaxed), prepared.count < Self.preparedLimit else {
            return count(Self.execParams(pgconn, sql, parameters))
        }
        let types = parameters.map { $0.type.rawValue }
        let name = Self.statementName(sql, types)
        if !prepared.contains(name) {
            guard let result = count(PQprepare(pgconn, name, sql, Int32(types.count), types)) else { return nil }
            guard PQresultStatus(result) == PGRES_COMMAND_OK else {
                return unprepared(pgconn, result, pool, name, sql, parameters)
            }
            PQclear(result)
            prepared.insert(name)
        }
        let result = count(Self.execPrepared(pgconn, name, parameters))
        guard let result, PQresultStatus(result) == PGRES_FATAL_ERROR else { return result }
        return unprepared(pgconn, result, pool, name, sql, parameters)
    }

    /// After a failed prepare or execute: when the server's prepared statements are not this
    /// connection's (26000, a statement missing; 42P05, a name taken: a pooler moved the session)
    /// and no transaction is open, turns preparing off for the pool and runs the statement
    /// unnamed; otherwise returns the failure.
    private func unprepared(
        _ pgconn: OpaquePointer, _ failure: OpaquePointer, _ pool: PoolShared, _ name: String, _ sql: String,
        _ parameters: [(type: PostgresType, bytes: [UInt8]?)]
    ) -> OpaquePointer? {
        guard let state = PQresultErrorField(failure, Int32(UInt8(ascii: "C"))),
            ["26000", "42P05"].contains(String(cString: state)), PQtransactionStatus(pgconn) == PQTRANS_IDLE
        else { return failure }
        PQclear(failure)
        pool.preparing.store(false, ordering: .relaxed)
        prepared.remove(name)
        return count(Self.execParams(pgconn, sql, parameters))
    }

    /// How many statements one connection keeps prepared; beyond it, statements run unnamed.
    static let preparedLimit = 1_000

    /// A name for a statement from a digest of its text and parameter types: the same name
    /// always means the same statement.
    static func statementName(_ sql: String, _ types: [UInt32]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        for type in types { hash = (hash ^ UInt64(type)) &* 0x0000_0100_0000_01b3 }
        return "enclave_\(String(hash, radix: 16))_\(sql.utf8.count)"
    }

    /// Counts a round trip (one result awaited from the server) for the pool.
    private func count(_ result: OpaquePointer?) -> OpaquePointer? {
        pool?.roundTrips.add(1, ordering: .relaxed)
        return result
    }

    private static func execPrepared(
        _ pgconn: OpaquePointer, _ name: String, _ parameters: [(type: PostgresType, bytes: [UInt8]?)]
    ) -> OpaquePointer? {
        withParameterValues(parameters) { values, lengths, formats in
            PQexecPrepared(pgconn, name, Int32(parameters.count), values, lengths, formats, 1)
        }
    }

    private static func withParameterValues(
        _ parameters: [(type: PostgresType, bytes: [UInt8]?)],
        _ body: ([UnsafePointer<CChar>?], [Int32], [Int32]) -> OpaquePointer?
    ) -> OpaquePointer? {
        let lengths = parameters.map { Int32($0.bytes?.count ?? 0) }
        let formats = [Int32](repeating: 1, count: parameters.count)
        let values: [UnsafeMutablePointer<CChar>?] = parameters.map { parameter in
            guard let bytes = parameter.bytes else { return nil }
            let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawPointer(pointer).copyMemory(
                    from: source.baseAddress ?? UnsafeRawPointer(pointer), byteCount: bytes.count)
            }
            return pointer
        }
        defer { values.forEach { $0?.deallocate() } }
        return body(values.map { $0.map { UnsafePointer($0) } }, lengths, formats)
    }

    private static func execParams(
        _ pgconn: OpaquePointer,
        _ sql: String,
        _ parameters: [(type: PostgresType, bytes: [UInt8]?)]
    ) -> OpaquePointer? {
        let types = parameters.map { $0.type.rawValue }
        return withParameterValues(parameters) { values, lengths, formats in
            PQexecParams(pgconn, sql, Int32(parameters.count), types, values, lengths, formats, 1)
        }
    }
}

extension PostgresError {
    /// Builds an error from a failed `PGresult`'s diagnostic fields.
    init(result: OpaquePointer) {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue ?? 0)) else { return nil }
            return String(cString: value)
        }
        self.init(
            code: .server,
            message: field("M")
                ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines),
            sqlState: field("C"),
            detail: field("D"),
            hint: field("H"),
            constraint: field("n"),
            table: field("t"),
            column: field("c"),
            position: field("P").flatMap { Int($0) }
        )
    }
}

/// What a pool shares with its connections: the round trips they made, and whether they
/// prepare statements.
final class PoolShared: Sendable {
    let roundTrips = Atomic<Int>(0)
    let preparing: Atomic<Bool>

    init(preparing: Bool) {
        self.preparing = Atomic(preparing)
    }
}
