import Dispatch
import Foundation
import Sealing
import Synchronization

/// Password hashing bounded to the machine. A derivation at production cost (scrypt, N = 2^17)
/// takes 128 MiB and about a tenth of a second of one core: a flood of sign-ins with made-up
/// emails (each is hashed too, so that timing does not tell) would take every core and gigabytes
/// from every tenant. At most `limit` derivations run at once, each on a thread of its own so that
/// Swift's cooperative pool never waits on one; past the limit a request is refused at once
/// (`Busy`: 503 with Retry-After), never queued.
public final class PasswordWork: Sendable {
    /// Derivations that may run at once.
    public let limit: Int
    private let running = Mutex(0)
    private let queue = DispatchQueue(label: "enclave.password-work", attributes: .concurrent)

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

    /// Runs `work` on a thread of its own if a slot is free; else throws `Busy` at once.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let admitted = running.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
        guard admitted else { throw Busy() }
        defer { running.withLock { $0 -= 1 } }
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
