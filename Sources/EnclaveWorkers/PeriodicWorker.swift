import Enclave
import Foundation
import ServiceLifecycle

/// A worker as a service: a pass every `interval`, until a graceful shutdown (a pass in
/// progress finishes first). Each report line starts with the worker's name.
public struct PeriodicWorker: Service {
    public let name: String
    /// What a pass does, for the first line ("delivering", "fetching").
    public let doing: String
    public let interval: Duration
    /// One pass; returns a line about it when it did something.
    public let pass: @Sendable () async throws -> String?
    /// Told about each pass that did something, and about failed passes (no PHI in either).
    public let report: @Sendable (String) -> Void

    public init(
        name: String, doing: String, interval: Duration, pass: @escaping @Sendable () async throws -> String?,
        report: @escaping @Sendable (String) -> Void
    ) {
        self.name = name
        self.doing = doing
        self.interval = interval
        self.pass = pass
        self.report = report
    }

    /// A worker whose pass returns a summary: `idle` (nothing done) reports nothing, any other
    /// is reported as `describe` words it.
    public init<Summary: Equatable & Sendable>(
        name: String, doing: String, interval: Duration, idle: Summary,
        pass: @escaping @Sendable () async throws -> Summary, describe: @escaping @Sendable (Summary) -> String,
        report: @escaping @Sendable (String) -> Void
    ) {
        self.init(
            name: name, doing: doing, interval: interval,
            pass: {
                let summary = try await pass()
                return summary == idle ? nil : describe(summary)
            }, report: report)
    }

    public func run() async throws {
        report("\(name): \(doing) every \(interval)")
        // Passes failed in a row: the first pass that succeeds after them says so, once (after a
        // failover, the line that tells an operator this worker found the new primary).
        var failed = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let line = try await pass()
                if failed > 0 { report("\(name): passes resume after \(failed) failed") }
                failed = 0
                if let line { report(line) }
            } catch  where isDatabaseUnreachable(error) {
                failed += 1
                report(
                    "\(name): cannot connect to the database (\(logSafeDescription(of: error))); retrying in \(interval)"
                )
            } catch {
                failed += 1
                report("\(name): pass failed (\(logSafeDescription(of: error))); retrying")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
