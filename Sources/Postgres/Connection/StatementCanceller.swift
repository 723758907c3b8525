import CLibPQ
import Dispatch
import Synchronization

/// Why a running statement was asked to stop.
enum CancelReason: Sendable {
    case task
    case timeout
}

/// One statement's cancellation state, shared by the task that runs it and its timers.
final class StatementTicket: Sendable {
    private let reasonState = Mutex<CancelReason?>(nil)

    var reason: CancelReason? { reasonState.withLock { $0 } }

    /// Records the first reason; later ones do not replace it.
    func mark(_ reason: CancelReason) {
        reasonState.withLock { if $0 == nil { $0 = reason } }
    }
}

/// Sends libpq cancel requests (`PQcancel`) for the statement a connection is running.
///
/// A request only goes out while that very statement runs: `finish` waits for an in-flight
/// request, so a cancel can never land on the next statement of the connection.
final class StatementCanceller: Sendable {
    private struct CancelHandle: @unchecked Sendable {
        // PGcancel is safe to use from any thread (libpq docs); access is serialized by `state`.
        let pointer: OpaquePointer
    }

    private struct State {
        var handle: CancelHandle?
        var running: StatementTicket?
    }

    private let state: Mutex<State>

    init(connection: OpaquePointer) {
        state = Mutex(State(handle: PQgetCancel(connection).map(CancelHandle.init)))
    }

    /// Marks `ticket` as the running statement; throws if it was cancelled before it started.
    func begin(_ ticket: StatementTicket) throws {
        try state.withLock { state in
            if ticket.reason == .task { throw CancellationError() }
            if ticket.reason == .timeout {
                throw PostgresError(code: .statementTimeout, message: "statement timed out before it started")
            }
            state.running = ticket
        }
    }

    /// Marks that no statement runs; waits for a cancel request in flight.
    func finish() {
        state.withLock { $0.running = nil }
    }

    /// Asks the server to cancel `ticket`'s statement if it is running. Never blocks the caller:
    /// `PQcancel` opens a network connection, so it runs on a Dispatch thread.
    func cancel(_ ticket: StatementTicket, reason: CancelReason) {
        ticket.mark(reason)
        DispatchQueue.global().async { [self] in
            state.withLock { state in
                guard state.running === ticket, let handle = state.handle else { return }
                var buffer = [CChar](repeating: 0, count: 256)
                _ = PQcancel(handle.pointer, &buffer, Int32(buffer.count))
            }
        }
    }

    /// Frees the cancel object; later requests do nothing.
    func invalidate() {
        state.withLock { state in
            if let handle = state.handle { PQfreeCancel(handle.pointer) }
            state.handle = nil
            state.running = nil
        }
    }
}
