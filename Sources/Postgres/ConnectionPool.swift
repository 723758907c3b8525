import Dispatch
import Foundation
import Synchronization

/// A bounded pool of connections.
///
/// A checkout waits, up to `checkoutTimeout`, while every connection is busy. A connection
/// found broken (backend terminated, server restarted) is discarded and replaced, so the next
/// checkout works. A connection returned inside a transaction is discarded, never reused.
public final class ConnectionPool: Sendable {
    /// How large the pool is and how long a checkout may wait.
    public struct Options: Sendable {
        public var maxConnections: Int
        public var checkoutTimeout: Duration
        /// Whether statements are prepared once per connection (named, by a digest of their text
        /// and parameter types) and then only bound and executed. Off behind a pooler in
        /// transaction mode that does not track prepared statements (PgBouncer before 1.21):
        /// `ENCLAVE_PREPARED_STATEMENTS=0` sets the default off.
        public var preparedStatements: Bool

        public init(
            maxConnections: Int = 10, checkoutTimeout: Duration = .seconds(10),
            preparedStatements: Bool = ProcessInfo.processInfo.environment["ENCLAVE_PREPARED_STATEMENTS"] != "0"
        ) {
            self.maxConnections = max(1, maxConnections)
            self.checkoutTimeout = checkoutTimeout
            self.preparedStatements = preparedStatements
        }
    }

    /// A point-in-time view of the pool, for metrics.
    public struct Usage: Sendable, Equatable {
        public var open: Int
        public var idle: Int
        public var waiting: Int
    }

    private enum Grant: Sendable {
        case connection(Connection)
        case connect
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Grant, any Error>
    }

    private struct State {
        var idle: [Connection] = []
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    /// Where connections go.
    public let configuration: ConnectionConfiguration
    /// Size and timeouts.
    public let options: Options
    private let state = Mutex(State())
    private let shared: PoolShared

    public init(configuration: ConnectionConfiguration, options: Options = Options()) {
        self.configuration = configuration
        self.options = options
        self.shared = PoolShared(preparing: options.preparedStatements)
    }

    /// Statements (round trips to the server) run on this pool's connections since it was made:
    /// one per query, one for `BEGIN`, one for `COMMIT`.
    public var roundTrips: Int { shared.roundTrips.load(ordering: .relaxed) }

    /// Whether the pool prepares statements now: its option, until a server showed it does not
    /// keep them (see `Options.preparedStatements`).
    public var preparesStatements: Bool { shared.preparing.load(ordering: .relaxed) }

    /// Current counts of open, idle and waiting.
    public var usage: Usage {
        state.withLock { Usage(open: $0.open, idle: $0.idle.count, waiting: $0.waiters.count) }
    }

    /// Lends a connection to `body` and takes it back afterwards.
    @discardableResult
    public func withConnection<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        let connection = try await checkout()
        do {
            let value = try await body(connection)
            release(connection)
            return value
        } catch {
            release(connection)
            throw error
        }
    }

    /// Runs `body` in a transaction on a pooled connection.
    @discardableResult
    public func withTransaction<T: Sendable>(
        isolation: IsolationLevel = .readCommitted,
        _ body: (Transaction) async throws -> T
    ) async throws -> T {
        try await withConnection { try await $0.withTransaction(isolation: isolation, body) }
    }

    /// Runs one parameterized statement on a pooled connection.
    @discardableResult
    public func query(
        _ sql: String,
        _ bindings: [any PostgresEncodable] = [],
        timeout: Duration? = nil
    ) async throws -> PostgresRows {
        try await withConnection { try await $0.query(sql, bindings, timeout: timeout) }
    }

    /// Closes idle connections now and the others as they come back; waiting checkouts fail.
    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.open -= state.idle.count
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(code: .poolClosed, message: "the pool is closed"))
        }
        for connection in idle { await connection.close() }
    }

    private func checkout() async throws -> Connection {
        switch try await nextGrant() {
        case .connection(let connection):
            if await connection.checkHealth() { return connection }
            await connection.close()
            // Keep the slot and open a fresh connection in its place.
            return try await connect()
        case .connect:
            return try await connect()
        }
    }

    private func connect() async throws -> Connection {
        do {
            return try await Connection.connect(configuration, pool: shared)
        } catch {
            releaseSlot()
            throw error
        }
    }

    private func nextGrant() async throws -> Grant {
        enum Immediate { case grant(Grant), wait(UInt64) }
        let immediate: Immediate = try state.withLock { state in
            if state.closed { throw PostgresError(code: .poolClosed, message: "the pool is closed") }
            if let connection = state.idle.popLast() { return .grant(.connection(connection)) }
            if state.open < options.maxConnections {
                state.open += 1
                return .grant(.connect)
            }
            state.nextWaiterID += 1
            return .wait(state.nextWaiterID)
        }
        switch immediate {
        case .grant(let grant):
            return grant
        case .wait(let id):
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    // Decide again under the lock: a connection released since the first look
                    // would otherwise sit idle while this waiter waits for nothing.
                    enum Decision { case cancelled, grant(Grant), wait }
                    let decision: Decision = state.withLock { state in
                        if Task.isCancelled { return .cancelled }
                        if let connection = state.idle.popLast() { return .grant(.connection(connection)) }
                        if state.open < options.maxConnections {
                            state.open += 1
                            return .grant(.connect)
                        }
                        state.waiters.append(Waiter(id: id, continuation: continuation))
                        return .wait
                    }
                    switch decision {
                    case .cancelled:
                        continuation.resume(throwing: CancellationError())
                        return
                    case .grant(let grant):
                        continuation.resume(returning: grant)
                        return
                    case .wait:
                        break
                    }
                    let seconds =
                        Double(options.checkoutTimeout.components.seconds)
                        + Double(options.checkoutTimeout.components.attoseconds) / 1e18
                    DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
                        failWaiter(
                            id,
                            PostgresError(
                                code: .poolTimeout,
                                message: "no database connection became free within \(options.checkoutTimeout)"
                            )
                        )
                    }
                }
            } onCancel: {
                failWaiter(id, CancellationError())
            }
        }
    }

    private func failWaiter(_ id: UInt64, _ error: any Error) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }

    private func release(_ connection: Connection) {
        let reusable = !connection.isBroken && connection.isIdleOutsideTransaction
        let (waiter, grant, discard): (Waiter?, Grant?, Bool) = state.withLock { state in
            if state.closed || !reusable {
                state.open -= 1
                if !state.closed, !state.waiters.isEmpty {
                    state.open += 1
                    return (state.waiters.removeFirst(), .connect, true)
                }
                return (nil, nil, true)
            }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst(), .connection(connection), false) }
            state.idle.append(connection)
            return (nil, nil, false)
        }
        if discard { Task { await connection.close() } }
        if let waiter, let grant { waiter.continuation.resume(returning: grant) }
    }

    /// Gives back a slot whose connection could not be opened, waking a waiter to try.
    private func releaseSlot() {
        let waiter = state.withLock { state -> Waiter? in
            state.open -= 1
            guard !state.closed, !state.waiters.isEmpty else { return nil }
            state.open += 1
            return state.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: .connect)
    }
}
