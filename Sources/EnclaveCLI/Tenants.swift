import ArgumentParser
import Enclave
import Foundation
import Postgres
import Sealing

extension EnclaveCommand {
    /// `enclave tenants`: per-tenant work across every practice.
    struct Tenants: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tenant migrations, re-encryption, offboarding and seeding across practices.",
            subcommands: [
                Migrate.self, Status.self, Reencrypt.self, IndexEmails.self, Offboard.self, Seed.self, Readable.self,
            ]
        )
    }
}

extension MaintenanceOptions {
    /// A maintenance pool sized for `jobs` workers.
    func maintenance(jobs: Int) throws -> MaintenanceContext {
        let configuration = try ConnectionConfiguration.forRole(
            .maint, override: databaseURL, allowInsecureTransport: insecureTransport)
        return MaintenanceContext(
            pool: ConnectionPool(configuration: configuration, options: .init(maxConnections: jobs + 1)))
    }
}

extension MaintenanceContext {
    /// The practice `only` names (a validated UUID), or every active practice.
    func tenantIDs(only: String?) async throws -> [UUID] {
        if let only, let id = UUID(uuidString: only) { return [id] }
        return try await tenantIDs()
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
                    maintenance: try options.maintenance(jobs: jobs),
                    directory: URL(fileURLWithPath: dir, isDirectory: true),
                    options: .init(
                        jobs: jobs, lockTimeout: lockTimeout, statementTimeout: statementTimeout, dryRun: dryRun))
                let display = ProgressDisplay(dryRun ? "checking" : "migrating")
                let outcomes = try await migrator.run(tenants: tenant.flatMap(UUID.init(uuidString:)).map { [$0] }) {
                    display.update(finished: $0.finished, failed: $0.failed, total: $0.total, elapsed: $0.elapsed)
                }
                var rows: [[String]] = []
                for file in try migrator.files() {
                    let mine = outcomes.filter { $0.migration == file.name }
                    func count(_ match: (TenantMigrator.Result) -> Bool) -> String {
                        String(mine.filter { match($0.result) }.count)
                    }
                    rows.append([
                        file.name,
                        count { if case .applied = $0 { true } else { false } },
                        count { $0 == .alreadyDone },
                        count { $0 == .pending },
                        count { $0 == .busy },
                        count { if case .failed = $0 { true } else { false } },
                    ])
                }
                print(
                    table(
                        header: ["migration", "applied", "already done", "pending", "busy elsewhere", "failed"],
                        rows: rows))
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
        static let configuration = CommandConfiguration(
            abstract: "Per tenant migration: practices done, pending, running, failed.")
        @OptionGroup var options: MaintenanceOptions
        @Option(help: "The directory of tenant migration files.") var dir: String = "tenants"

        func run() async throws {
            try await reportingErrors {
                let migrator = try TenantMigrator(
                    maintenance: try options.maintenance(jobs: 1),
                    directory: URL(fileURLWithPath: dir, isDirectory: true))
                let rows = try await migrator.status().map {
                    ["\($0.migration)", "\($0.done)", "\($0.pending)", "\($0.running)", "\($0.failed)"]
                }
                print(table(header: ["migration", "done", "pending", "running", "failed"], rows: rows))
            }
        }
    }
}

extension EnclaveCommand.Tenants {
    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Create N practices with M leads each (synthetic PHI, sealed as ingest seals it), for tests and benchmarks."
        )
        @OptionGroup var options: MaintenanceOptions
        @Option(help: "How many practices.") var practices: Int
        @Option(help: "Leads per practice.") var leads: Int = 0
        @Option(help: "Name prefix.") var name: String = "Seeded Practice"
        @Option(help: "Practices seeded at once.") var jobs: Int = 2

        func validate() throws {
            guard (1...32).contains(jobs) else { throw ValidationError("--jobs must be 1 to 32") }
        }

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let display = ProgressDisplay("seeding")
                let started = ContinuousClock.now
                let ids = try await Seeder(keys: keys).seed(
                    practices: practices, leadsPerPractice: leads, namePrefix: name, jobs: jobs
                ) {
                    display.update(finished: $0, failed: 0, total: practices, elapsed: ContinuousClock.now - started)
                }
                print("seeded \(ids.count) practices with \(leads) leads each in \(ContinuousClock.now - started)")
            }
        }
    }
}

extension EnclaveCommand.Tenants {
    struct Reencrypt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move every PHI ciphertext to its practice's active data key version, online, in batches.")
        @OptionGroup var options: MaintenanceOptions
        @Option(help: "Only this practice.") var tenant: String?
        @Option(help: "Practices at once.") var jobs: Int = 2
        @Flag(help: "Destroy retired data key versions that no row uses any more.") var destroyRetired = false

        func validate() throws {
            guard (1...32).contains(jobs) else { throw ValidationError("--jobs must be 1 to 32") }
            if let tenant, UUID(uuidString: tenant) == nil { throw ValidationError("--tenant \(tenant) is not a UUID") }
        }

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let tenants = try await keys.maintenance.tenantIDs(only: tenant)
                let display = ProgressDisplay("re-encrypting")
                let started = ContinuousClock.now
                let reports = try await Reencryptor(keys: keys).reencrypt(
                    tenants: tenants, jobs: jobs, destroyUnused: destroyRetired
                ) { display.update(finished: $0.finished, failed: 0, total: $0.total, elapsed: $0.elapsed) }
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let rows = reports.map(\.rows).reduce(0, +)
                print(
                    String(
                        format: "re-encrypted %d rows and %d recordings in %d practices in %.1f s (%.0f rows/s)",
                        rows, reports.map(\.recordings).reduce(0, +), reports.count, seconds,
                        Double(rows) / max(seconds, 0.001)))
                let unused = reports.filter { !$0.unusedVersions.isEmpty }
                if !unused.isEmpty {
                    print(
                        "\(unused.count) practices have data key versions that seal nothing now"
                            + (destroyRetired ? " (destroyed)" : "; --destroy-retired destroys them"))
                }
            }
        }
    }

    struct IndexEmails: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "index-emails",
            abstract: "Index the email address of leads stored before the email blind index (issue 29), resumably.",
            discussion:
                "Each practice in its own context, in batches; a stopped run goes on from its last batch, and a "
                + "practice done is skipped. New leads are indexed as they arrive.")
        @OptionGroup var options: MaintenanceOptions
        @Option(help: "Only this practice.") var tenant: String?
        @Option(help: "Practices at once.") var jobs: Int = 2
        @Option(help: "Leads per batch (each its own transaction).") var batchSize: Int = 1_000

        func validate() throws {
            guard (1...32).contains(jobs) else { throw ValidationError("--jobs must be 1 to 32") }
            guard (1...50_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 50000") }
            if let tenant, UUID(uuidString: tenant) == nil { throw ValidationError("--tenant \(tenant) is not a UUID") }
        }

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let tenants = try await keys.maintenance.tenantIDs(only: tenant)
                let display = ProgressDisplay("indexing emails")
                let counts = try await EmailIndexBackfill(keys: keys, batchSize: batchSize).run(
                    tenants: tenants, jobs: jobs
                ) { display.update(finished: $0.finished, failed: 0, total: $0.total, elapsed: $0.elapsed) }
                print("indexed the email address of \(counts.reduce(0, +)) leads in \(counts.count) practices")
            }
        }
    }

    struct Offboard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Export (optionally), close every way in, delete the PHI and destroy the keys of a practice; keep its audit chain."
        )
        @OptionGroup var options: MaintenanceOptions
        @Argument(help: "The practice to offboard.") var practice: String
        @Option(
            help: """
                Write the practice's leads and recordings first into this file: a tar (CSV, JSON, audio files) \
                encrypted with age, to --age-recipient, else the practice's age key, else --passphrase-file.
                """)
        var export: String?
        @Option(help: "The practice's age public key (age1…) to encrypt the export to.") var ageRecipient: String?
        @Option(help: "A file holding the passphrase (12+ characters) the practice chose for the export.")
        var passphraseFile: String?
        @Flag(help: "Do not ask for the practice's name.") var confirm = false

        func validate() throws {
            guard UUID(uuidString: practice) != nil else {
                throw ValidationError("\(practice) is not a practice id (UUID)")
            }
            if export == nil, ageRecipient != nil || passphraseFile != nil {
                throw ValidationError("--age-recipient and --passphrase-file go with --export")
            }
        }

        func run() async throws {
            try await reportingErrors {
                guard let id = UUID(uuidString: practice) else { return }
                let keys = try await options.keyManagement()
                let offboarding = Offboarding(keys: keys)
                let name = try await offboarding.name(of: id)
                if !confirm {
                    print(
                        "This destroys every key of \"\(name)\" and deletes its PHI for good. Type the practice's name to go on:"
                    )
                    guard readLine(strippingNewline: true) == name else {
                        throw ConfigurationError("the name did not match; nothing was changed")
                    }
                }
                var exportTarget: (path: String, recipient: AgeEncryptor.Recipient)?
                if let export {
                    let configured = try await ComplianceOperations(maintenance: keys.maintenance).settings(
                        practice: id
                    )
                    .ageRecipient
                    if let recipient = ageRecipient ?? configured {
                        _ = try AgeEncryptor.decodeRecipient(recipient)
                        exportTarget = (export, .x25519(recipient))
                    } else if let passphraseFile {
                        guard let data = FileManager.default.contents(atPath: passphraseFile),
                            let passphrase = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .newlines),
                            passphrase.count >= 12
                        else {
                            throw ConfigurationError(
                                "--passphrase-file \(passphraseFile): cannot be read, or holds fewer than 12 characters"
                            )
                        }
                        exportTarget = (export, .passphrase(passphrase))
                    } else {
                        throw ConfigurationError(
                            "--export needs the practice's age key (settings), --age-recipient or --passphrase-file; nothing was changed"
                        )
                    }
                }
                let report = try await offboarding.offboard(id, export: exportTarget)
                if let leads = report.exportedLeads {
                    print(
                        "exported \(leads) leads and \(report.exportedRecordings ?? 0) recordings to \(export ?? "") (age-encrypted tar; open with age -d)"
                    )
                }
                print(
                    "revoked \(report.agreementsRevoked) agreements, ended \(report.sessionsEnded) sessions, disabled \(report.credentialsDisabled) ingest credentials"
                )
                print(
                    "deleted \(report.leadsDeleted) leads and their recordings; destroyed \(report.keysDestroyed) keys; the audit chain stays"
                )
                for version in report.masterKeyVersions {
                    print(
                        "backups taken before now still hold this practice's keys wrapped by master key version \(version)."
                    )
                    print(
                        "  once those backups expire: enclave keys rotate-master (if \(version) is still active), then enclave keys destroy-master --version \(version)"
                    )
                }
            }
        }
    }

    struct Readable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open every sealed field and recording of every active practice with the master key file.",
            discussion: """
                After a restore: proof that the data reads back. After a master key version is destroyed: \
                which practices it leaves unreadable. Exit status 1 when any practice does not open.
                """)
        @OptionGroup var options: MaintenanceOptions

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let results = try await ReadabilityCheck(keys: keys).run()
                for result in results {
                    let id = result.practice.uuidString.lowercased()
                    if let failure = result.failure {
                        print("practice \(id): unreadable: \(failure)")
                    } else {
                        print(
                            "practice \(id): \(result.leads) leads, \(result.fields) fields and \(result.recordings) recordings open"
                        )
                    }
                }
                let unreadable = results.filter { $0.failure != nil }.count
                print("\(results.count - unreadable) of \(results.count) practices read back")
                await keys.maintenance.pool.close()
                if unreadable > 0 { throw ExitCode.failure }
            }
        }
    }
}
