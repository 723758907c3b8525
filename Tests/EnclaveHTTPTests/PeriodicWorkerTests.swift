import EnclaveWorkers
import Foundation
import Postgres
import Synchronization
import Testing

/// What a worker says while its database is out of reach (a failover) and once it is back: the
/// failover test reads these lines from every worker's log (issue 28).
@Suite("Periodic workers through an outage")
struct PeriodicWorkerTests {
    final class Script: Sendable {
        let passes = Mutex(0)
        let lines = Mutex<[String]>([])

        /// Passes 1 and 2 cannot reach the database, pass 3 fails otherwise, pass 4 does
        /// something, later passes find nothing to do.
        func pass() throws -> String? {
            let number = passes.withLock { count in
                count += 1
                return count
            }
            switch number {
            case 1, 2: throw PostgresError(code: .connectionLost, message: "server closed the connection")
            case 3: throw PostgresError(code: .server, message: "value 555-0100 too long", sqlState: "22001")
            case 4: return "audit: linked 3 events"
            default: return nil
            }
        }
    }

    @Test("failed passes are reported and retried; the first pass that succeeds says passes resume, once")
    func resumesAfterAnOutage() async throws {
        let script = Script()
        let worker = PeriodicWorker(
            name: "audit", doing: "linking", interval: .milliseconds(5), pass: { try script.pass() },
            report: { line in script.lines.withLock { $0.append(line) } })
        let running = Task { try await worker.run() }
        while script.passes.withLock({ $0 }) < 6 { try await Task.sleep(for: .milliseconds(5)) }
        running.cancel()
        _ = await running.result
        let lines = script.lines.withLock { $0 }
        #expect(lines.first == "audit: linking every 0.005 seconds")
        let expected = [
            "audit: cannot connect to the database", "audit: cannot connect to the database",
            "audit: pass failed (PostgreSQL error 22001)", "audit: passes resume after 3 failed",
            "audit: linked 3 events",
        ]
        #expect(lines.count == 6)
        for (line, start) in zip(lines.dropFirst(), expected) { #expect(line.hasPrefix(start)) }
        #expect(lines.filter { $0.contains("resume") }.count == 1)
        // No server message in a log line: it may quote a value.
        #expect(!lines.contains { $0.contains("555-0100") })
    }
}
