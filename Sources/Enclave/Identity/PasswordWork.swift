import Foundation
import Sealing
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Password hashing bounded to the machine. A derivation at production cost (scrypt, N = 2^17)
/// takes 128 MiB and about a tenth of a second of one core: a flood of sign-ins with made-up
/// emails (each is hashed too, so that timing does not tell) would take every core and gigabytes
/// from every tenant. At most `limit` derivations run at once, each on a thread of its own so that
/// Swift's cooperative pool never waits on one; past the limit a request is refused at once
/// (`Busy`: 503 with Retry-After), never queued. The threads run at a lower priority (nice 10)
/// than the rest of the process, so that while they hash, every other request still gets the
/// CPU first: a sign-in flood slows sign-ins, not the API.
public final class PasswordWork: Sendable {
    /// Derivations that may run at once.
    public let limit: Int
    fileprivate let running = Mutex(0)
    fileprivate let derivations = Mutex(0)

    /// The refusal past the limit: the service is busy, try again shortly.
    public struct Busy: Error, Sendable, Equatable, DescribedError {
        public init() {}
        public var problem: ProblemDescription? {
            ProblemDescription(
                status: 503, type: "busy", title: "the service is busy; nothing was done, try again in a few seconds")
        }
        public var logDescription: String { "password work at its limit" }
    }

    /// `limit` defaults to the machine's cores: hashing cannot take more than the CPU it has.
    public init(limit: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.limit = max(1, limit)
    }

    /// The key `password` derives under the PHC `parameters` (see `PasswordHasher.deriveKey`).
    public func deriveKey(_ password: String, parameters: String) async throws -> [UInt8] {
        try await run { try PasswordHasher.deriveKey(password, parameters: parameters) }
    }

    /// A new PHC string for `password` at `cost`.
    public func hash(_ password: String, cost: PasswordHasher.Cost) async throws -> String {
        try await run { try PasswordHasher(cost: cost).hash(password) }
    }

    /// Derivations running now.
    public var inFlight: Int { running.withLock { $0 } }

    /// Derivations started since this instance was made.
    public var started: Int { derivations.withLock { $0 } }

    /// A slot for one derivation, taken before any other work of a request (a sign-in takes it
    /// before it asks the database anything), so that a request refused for want of one costs
    /// nothing else. Released after its derivation, or when dropped unused.
    public final class Slot: Sendable {
        private let work: PasswordWork
        private let held = Mutex(true)

        fileprivate init(_ work: PasswordWork) { self.work = work }

        /// The key `password` derives under `parameters`, in this slot.
        public func deriveKey(_ password: String, parameters: String) async throws -> [UInt8] {
            try await run { try PasswordHasher.deriveKey(password, parameters: parameters) }
        }

        fileprivate func run<T: Sendable>(_ job: @escaping @Sendable () throws -> T) async throws -> T {
            defer { release() }
            work.derivations.withLock { $0 += 1 }
            return try await withCheckedThrowingContinuation { continuation in
                // A thread per derivation: creating one costs microseconds, a derivation a tenth
                // of a second, and a thread of its own can be given a lower priority and exits after.
                let thread = Thread {
                    PasswordWork.yieldToRequests()
                    continuation.resume(with: Result { try job() })
                }
                thread.name = "enclave.password-work"
                thread.start()
            }
        }

        private func release() {
            let wasHeld = held.withLock { held in
                defer { held = false }
                return held
            }
            if wasHeld { work.running.withLock { $0 -= 1 } }
        }

        deinit { release() }
    }

    /// Takes a slot if one is free; else throws `Busy` at once.
    public func reserve() throws -> Slot {
        let admitted = running.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
        guard admitted else { throw Busy() }
        return Slot(self)
    }

    /// Runs `work` on a thread of its own if a slot is free; else throws `Busy` at once.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await reserve().run(work)
    }

    /// Lowers the calling thread's priority: on Linux the nice value is per thread, and `who` 0 is
    /// the calling thread.
    fileprivate static func yieldToRequests() {
        #if canImport(Glibc)
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        #endif
    }
}
