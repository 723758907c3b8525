import ArgumentParser
import Enclave
import Foundation
import Postgres

extension EnclaveCommand {
    /// `enclave tenants`: per-tenant work across every practice.
    struct Tenants: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tenant migrations, re-encryption, offboarding and seeding across practices.",
            subcommands: [Migrate.self, Status.self, Seed.self]
        )
    }
}

extension MaintenanceOptions {
    /// A maintenance pool sized for `jobs` workers.
    func maintenance(jobs: Int) throws -> MaintenanceContext {
        let configuration = try ConnectionConfiguration.forRole(.maint, override: databaseURL, allowInsecureTransport: insecureTransport)
        return MaintenanceContext(pool: ConnectionPool(configuration: configuration, options: .init(maxConnections: jobs + 1)))
    }
}

/// Draws progress: a bar redrawn in place on a terminal, a line per tenth otherwise.
final class ProgressDisplay: @unchecked Sendable {
    // Only touched under `lock`.
    private let lock = NSLock()
    private var lastTenth = -1
    private let terminal = isatty(STDOUT_FILENO) == 1
    private let label: String

    init(_ label: String) { self.label = label }

    func update(finished: Int, failed: Int, total: Int, elapsed: Duration) {
        lock.lock()
        defer { lock.unlock() }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(finished) / seconds : 0
        let eta = rate > 0 ? Double(total - finished) / rate : 0
        if terminal {
            let width = 30
            let filled = total > 0 ? width * finished / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "\r%@ [%@] %d/%d, %d failed, %.0f/s, ETA %.0fs ", label, bar, finished, total, failed, rate, eta)
            FileHandle.standardOutput.write(Data(line.utf8))
            if finished == total { FileHandle.standardOutput.write(Data("\n".utf8)) }
        } else {
            let tenth = total > 0 ? finished * 10 / total : 10
            if tenth != lastTenth {
                lastTenth = tenth
                print(String(format: "%@: %d/%d tenants, %d failed, %.0f/s", label, finished, total, failed, rate))
            }
        }
    }
}

extension EnclaveCommand.Tenants {
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply tenants/*.sql to every practice (or one), each inside that practice's context.",
            discussion: "A practice created later gets every tenant migration on the next run.")
        @OptionGroup var options: MaintenanceOptions

        @Option(help: "The directory of tenant migration files.") var dir: String = "tenants"
        @Option(help: "Only this practice.") var tenant: String?
        @Option(help: "Practices migrated at once.") var jobs: Int = 4
        @Option(help: "PostgreSQL lock_timeout per statement (lock timeouts are retried with backoff).")
        var lockTimeout: String = "5s"
        @Option(help: "PostgreSQL statement_timeout per statement.") var statementTimeout: String = "5min"
        @Flag(help: "List what would run; change nothing.") var dryRun = false

        func validate() throws {
            guard (1...64).contains(jobs) else { throw ValidationError("--jobs must be 1 to 64") }
            if let tenant, UUID(uuidString: tenant) == nil { throw ValidationError("--tenant \(tenant) is not a UUID") }
        }

        func run() async throws {
            try await reportingErrors {
                let migrator = try TenantMigrator(
                    maintenance: try options.maintenance(jobs: jobs), directory: URL(fileURLWithPath: dir, isDirectory: true),
                    options: .init(jobs: jobs, lockTimeout: lockTimeout, statementTimeout: statementTimeout, dryRun: dryRun))
                let display = ProgressDisplay(dryRun ? "checking" : "migrating")
                let outcomes = try await migrator.run(tenants: tenant.flatMap(UUID.init(uuidString:)).map { [$0] }) {
                    display.update(finished: $0.finished, failed: $0.failed, total: $0.total, elapsed: $0.elapsed)
                }
                var rows: [[String]] = []
                for file in try migrator.files() {
                    let mine = outcomes.filter { $0.migration == file.name }
                    func count(_ match: (TenantMigrator.Result) -> Bool) -> String { String(mine.filter { match($0.result) }.count) }
                    rows.append([
                        file.name,
                        count { if case .applied = $0 { true } else { false } },
                        count { $0 == .alreadyDone },
                        count { $0 == .pending },
                        count { $0 == .busy },
                        count { if case .failed = $0 { true } else { false } },
                    ])
                }
                print(table(header: ["migration", "applied", "already done", "pending", "busy elsewhere", "failed"], rows: rows))
                let failures = outcomes.compactMap { outcome -> String? in
                    guard case .failed(let message) = outcome.result else { return nil }
                    return "practice \(outcome.tenant.uuidString.lowercased()): \(message)"
                }
                for failure in failures.prefix(50) { printError("failed: \(failure)") }
                if failures.count > 50 { printError("… and \(failures.count - 50) more failures") }
                if !failures.isEmpty { throw ExitCode.failure }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Per tenant migration: practices done, pending, running, failed.")
        @OptionGroup var options: MaintenanceOptions
        @Option(help: "The directory of tenant migration files.") var dir: String = "tenants"

        func run() async throws {
            try await reportingErrors {
                let migrator = try TenantMigrator(maintenance: try options.maintenance(jobs: 1), directory: URL(fileURLWithPath: dir, isDirectory: true))
                let rows = try await migrator.status().map { ["\($0.migration)", "\($0.done)", "\($0.pending)", "\($0.running)", "\($0.failed)"] }
                print(table(header: ["migration", "done", "pending", "running", "failed"], rows: rows))
            }
        }
    }
}

extension EnclaveCommand.Tenants {
    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create N practices with M leads each (synthetic PHI, sealed as ingest seals it), for tests and benchmarks.")
        @OptionGroup var options: MaintenanceOptions
        @Option(help: "How many practices.") var practices: Int
        @Option(help: "Leads per practice.") var leads: Int = 0
        @Option(help: "Name prefix.") var name: String = "Seeded Practice"

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let display = ProgressDisplay("seeding")
                let started = ContinuousClock.now
                let ids = try await Seeder(keys: keys).seed(practices: practices, leadsPerPractice: leads, namePrefix: name) {
                    display.update(finished: $0, failed: 0, total: practices, elapsed: ContinuousClock.now - started)
                }
                print("seeded \(ids.count) practices with \(leads) leads each in \(ContinuousClock.now - started)")
            }
        }
    }
}
