import ArgumentParser
import Enclave
import Foundation
import Postgres

extension EnclaveCommand {
    /// `enclave migrate`: schema migrations from `sql/`, as the owner role.
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Apply and inspect schema migrations (sql/NNNN_description.sql) and function files "
                + "(sql/functions/) as the owner role.",
            subcommands: [Up.self, Status.self, Plan.self, Verify.self]
        )
    }
}

/// Options shared by every `migrate` subcommand.
struct MigrationOptions: ParsableArguments {
    @Option(help: "The directory of migration files.")
    var dir: String = "sql"

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "The owner role's PostgreSQL URL (default: $ENCLAVE_ADMIN_DATABASE_URL).",
            discussion: "Prefer the variable: arguments show in process lists."
        )
    )
    var databaseURL: String?

    @Option(help: "PostgreSQL lock_timeout for each statement.")
    var lockTimeout: String = "5s"

    @Option(help: "PostgreSQL statement_timeout for each statement (0 disables it).")
    var statementTimeout: String = "10min"

    @Option(help: "Seconds to wait for another migration runner to finish.")
    var lockWait: Int = 600

    @Flag(help: "Allow a connection to a non-loopback host without sslmode=verify-full.")
    var insecureTransport = false

    func migrator(log: @escaping @Sendable (String) -> Void = { print($0) }) throws -> SchemaMigrator {
        let configuration = try ConnectionConfiguration.forRole(
            .owner,
            override: databaseURL,
            allowInsecureTransport: insecureTransport
        )
        return try SchemaMigrator(
            configuration: configuration,
            directory: URL(fileURLWithPath: dir, isDirectory: true),
            options: .init(lockTimeout: lockTimeout, statementTimeout: statementTimeout, lockWait: .seconds(lockWait)),
            log: log
        )
    }
}

extension EnclaveCommand.Migrate {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply every pending migration in order, then every changed function file.")
        @OptionGroup var options: MigrationOptions

        func run() async throws {
            try await reportingErrors { try await options.migrator().up() }
        }
    }

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List what `up` would apply; change nothing.")
        @OptionGroup var options: MigrationOptions

        func run() async throws {
            try await reportingErrors {
                let plan = try await options.migrator().plan()
                if plan.isEmpty { print("nothing to apply") }
                for file in plan.migrations {
                    let mode = file.transactional ? "" : " (no transaction)"
                    print("would apply \(file.name)\(mode)")
                }
                for file in plan.functions { print("would apply \(file.name)") }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List applied and pending migrations with checksums.")
        @OptionGroup var options: MigrationOptions

        func run() async throws {
            try await reportingErrors {
                let status = try await options.migrator().status()
                let formatter = ISO8601DateFormatter()
                let rows = status.migrations.map { entry in
                    [
                        String(format: "%04d", entry.version),
                        entry.name,
                        entry.state.rawValue,
                        String((entry.applied?.checksum ?? entry.fileChecksum ?? "").prefix(16)),
                        entry.applied.map { formatter.string(from: $0.appliedAt) } ?? "",
                        entry.applied.map { "\($0.durationMilliseconds) ms" } ?? "",
                    ]
                }
                print(table(header: ["version", "name", "state", "checksum", "applied at", "took"], rows: rows))
                if !status.functions.isEmpty {
                    let functionRows = status.functions.map { entry in
                        [
                            entry.name,
                            entry.state.rawValue,
                            String((entry.fileChecksum ?? entry.applied?.checksum ?? "").prefix(16)),
                            entry.applied.map { formatter.string(from: $0.appliedAt) } ?? "",
                            entry.applied?.appliedBy ?? "",
                        ]
                    }
                    print("")
                    print(
                        table(header: ["function file", "state", "checksum", "applied at", "by"], rows: functionRows))
                }
                if status.migrations.contains(where: { $0.state == .changed || $0.state == .missingFile }) {
                    throw ExitCode.failure
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that every applied migration's file is present and unchanged, and that the "
                + "database's functions are exactly those of sql/functions/."
        )
        @OptionGroup var options: MigrationOptions

        func run() async throws {
            try await reportingErrors {
                let problems = try await options.migrator().verify()
                for problem in problems { printError("\(problem)") }
                if !problems.isEmpty { throw ExitCode.failure }
                print("ok: every applied migration matches its file, and every function its function file")
            }
        }
    }
}

/// Formats rows as left-aligned columns under a header.
func table(header: [String], rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
}
