import Synchronization

/// A one-chunk handoff from the task that decrypts a recording to the response body that sends
/// it: the sender waits until the previous chunk was taken, so memory stays at a chunk or two
/// however slow the client. When the reader goes away, or does not take a chunk within the
/// write timeout (the client reads slower than a chunk per timeout), `send` throws and the
/// stream ends, giving back the user's stream slot.
final class RecordingPipe: Sendable {
    private struct State {
        var chunk: [UInt8]?
        var finished = false
        var failure: (any Error)?
        var readerGone = false
        var reader: CheckedContinuation<Void, Never>?
        var writer: CheckedContinuation<Void, Never>?
        var expired = false
    }

    struct ReaderGone: Error {}
    struct ReaderTooSlow: Error {}

    private let state = Mutex(State())
    private let timeout: Duration

    init(timeout: Duration = .seconds(30)) {
        self.timeout = timeout
    }

    /// Hands over `chunk`; waits while the reader has not taken the previous one, for at most
    /// the timeout.
    func send(_ chunk: [UInt8]) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (sent, gone, reader) = state.withLock { state -> (Bool, Bool, CheckedContinuation<Void, Never>?) in
                if state.readerGone { return (false, true, nil) }
                guard state.chunk == nil else { return (false, false, nil) }
                state.chunk = chunk
                defer { state.reader = nil }
                return (true, false, state.reader)
            }
            if gone { throw ReaderGone() }
            if sent {
                reader?.resume()
                return
            }
            if state.withLock({ $0.expired }) || ContinuousClock.now >= deadline { throw ReaderTooSlow() }
            let timer = Task { [weak self] in
                try await Task.sleep(until: deadline)
                self?.expire()
            }
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.chunk == nil || state.readerGone || state.expired { return true }
                    state.writer = continuation
                    return false
                }
                if now { continuation.resume() }
            }
            timer.cancel()
        }
    }

    /// The sender waited too long: it is released and fails.
    private func expire() {
        let writer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.expired = true
            defer { state.writer = nil }
            return state.writer
        }
        writer?.resume()
    }

    /// No more chunks; `error` ends the body with a failure.
    func finish(_ error: (any Error)? = nil) {
        let reader = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            state.failure = error
            defer { state.reader = nil }
            return state.reader
        }
        reader?.resume()
    }

    /// The next chunk, or nil at the end.
    func receive() async throws -> [UInt8]? {
        while true {
            enum Step {
                case chunk([UInt8], CheckedContinuation<Void, Never>?)
                case end((any Error)?)
                case wait
            }
            let step = state.withLock { state -> Step in
                if let chunk = state.chunk {
                    state.chunk = nil
                    defer { state.writer = nil }
                    return .chunk(chunk, state.writer)
                }
                if state.finished { return .end(state.failure) }
                return .wait
            }
            switch step {
            case .chunk(let chunk, let writer):
                writer?.resume()
                return chunk
            case .end(let failure):
                if let failure { throw failure }
                return nil
            case .wait:
                await withCheckedContinuation { continuation in
                    let now = state.withLock { state -> Bool in
                        if state.chunk != nil || state.finished { return true }
                        state.reader = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            }
        }
    }

    /// The reader stopped (the client went away): a waiting sender is released and fails.
    func closeReader() {
        let writer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.readerGone = true
            state.chunk = nil
            defer { state.writer = nil }
            return state.writer
        }
        writer?.resume()
    }

    /// The chunks as an async sequence. When the sequence and its iterators are all gone (the
    /// body was sent, or dropped unsent when the client went away), the reader side closes.
    var chunks: Chunks { Chunks(reader: Reader(pipe: self)) }

    /// Closes the reader side when the last holder lets go.
    final class Reader: Sendable {
        let pipe: RecordingPipe
        init(pipe: RecordingPipe) { self.pipe = pipe }
        deinit { pipe.closeReader() }
    }

    struct Chunks: AsyncSequence, Sendable {
        typealias Element = ArraySlice<UInt8>
        let reader: Reader

        struct Iterator: AsyncIteratorProtocol {
            let reader: Reader
            func next() async throws -> ArraySlice<UInt8>? { try await reader.pipe.receive().map { $0[...] } }
        }

        func makeAsyncIterator() -> Iterator { Iterator(reader: reader) }
    }
}
