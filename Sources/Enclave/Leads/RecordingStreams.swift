import Foundation
import Synchronization

/// How many recordings one user may be streaming at once in this process. A stream holds no
/// database connection while its client reads, but it holds a task and a chunk of memory until
/// the client finishes or the connection's write timeout closes it; the cap keeps one account
/// from holding many. A browser plays one recording with one or two range requests.
public final class RecordingStreams: Sendable {
    /// Streams one user may have open at once.
    public let perUser: Int
    private let open = Mutex([UUID: Int]())

    public init(perUser: Int = 4) {
        precondition(perUser > 0, "a user must be able to play one recording")
        self.perUser = perUser
    }

    /// A slot for `user`, held until the returned value is released or deallocated.
    ///
    /// - Throws: `.throttled` when the user already has `perUser` streams open.
    func acquire(for user: UUID) throws -> Slot {
        let taken = open.withLock { open -> Bool in
            let count = open[user, default: 0]
            guard count < perUser else { return false }
            open[user] = count + 1
            return true
        }
        guard taken else {
            throw AccessError(
                .throttled, "you are playing \(perUser) recordings already: finish one first",
                retryAfter: Date().addingTimeInterval(5))
        }
        return Slot(streams: self, user: user)
    }

    /// Streams open for `user` now.
    public func count(for user: UUID) -> Int { open.withLock { $0[user, default: 0] } }

    fileprivate func release(_ user: UUID) {
        open.withLock { open in
            let count = open[user, default: 0] - 1
            open[user] = count > 0 ? count : nil
        }
    }

    /// One open stream; the slot frees itself when the stream's last holder lets go.
    final class Slot: Sendable {
        private let streams: RecordingStreams
        private let user: UUID
        fileprivate init(streams: RecordingStreams, user: UUID) {
            self.streams = streams
            self.user = user
        }
        deinit { streams.release(user) }
    }
}
