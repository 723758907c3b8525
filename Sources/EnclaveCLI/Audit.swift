import ArgumentParser
import Enclave
import EnclaveWorkers
import Foundation
import Logging
import Postgres
import Sealing
import ServiceLifecycle

extension EnclaveCommand {
    /// `enclave audit`: link, checkpoint and verify the audit chains.
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Link the audit trail into its chains, checkpoint them, and verify them.",
            subcommands: [Chain.self, Verify.self, Checkpoint.self, Checkpoints.self]
        )
    }
}

/// Options for the audit commands: the maintenance connection, the audit key and the log.
struct AuditOptions: ParsableArguments {
    @OptionGroup var maintenance: MaintenanceOptions

    @Option(
        help: ArgumentHelp(
            "The audit key file (default: $ENCLAVE_AUDIT_KEY_FILE).",
            discussion: "Keep it outside the database, like the master key. The chainer creates it (mode 0600)."))
    var key: String?

    @Option(
        help:
            "The append-only checkpoint log (default: $ENCLAVE_AUDIT_CHECKPOINTS, else the key file's path + .checkpoints)."
    )
    var checkpoints: String?

    func keyPath() throws -> String {
        if let key, !key.isEmpty { return key }
        guard let path = ProcessInfo.processInfo.environment["ENCLAVE_AUDIT_KEY_FILE"], !path.isEmpty else {
            throw ConfigurationError("ENCLAVE_AUDIT_KEY_FILE is not set: it must name the audit key file")
        }
        return path
    }

    func checkpointPath() throws -> String {
        if let checkpoints, !checkpoints.isEmpty { return checkpoints }
        if let path = ProcessInfo.processInfo.environment["ENCLAVE_AUDIT_CHECKPOINTS"], !path.isEmpty { return path }
        return try keyPath() + ".checkpoints"
    }

    /// The audit key; created when `create` and missing.
    func loadKey(create: Bool = false) throws -> MasterKeyFile {
        let path = try keyPath()
        if create && !FileManager.default.fileExists(atPath: path) {
            let key = try MasterKeyFile.create(path: path)
            printNow("created audit key file \(path) (mode 0600); keep it outside the database")
            return key
        }
        return try MasterKeyFile.load(path: path)
    }

    func maintenanceContext() throws -> MaintenanceContext {
        let configuration = try ConnectionConfiguration.forRole(
            .maint, override: maintenance.databaseURL, allowInsecureTransport: maintenance.insecureTransport)
        return MaintenanceContext(pool: ConnectionPool(configuration: configuration, options: .init(maxConnections: 2)))
    }

    func chainer(create: Bool, window: Int = 300) throws -> AuditChainer {
        let key = try loadKey(create: create)
        return AuditChainer(
            maintenance: try maintenanceContext(), key: key, log: CheckpointLog(path: try checkpointPath(), key: key),
            window: .seconds(window))
    }
}

extension EnclaveCommand.Audit {
    /// `enclave audit chain`: the chainer worker.
    struct Chain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Link new audit events into their chains and append the heads to the checkpoint log.",
            discussion: """
                Runs as the maintenance role with the audit key. Accesses write their events unlinked; \
                this worker links them within seconds, in batches, and after each batch appends the \
                chains' new heads, HMAC-signed, to the checkpoint log. Run one (a second one waits its \
                turn). Without --once it runs until SIGINT or SIGTERM.
                """)
        @OptionGroup var options: AuditOptions
        @Flag(help: "Make one pass and exit.") var once = false
        @Option(help: "Seconds between passes.") var interval: Double = 2
        @Option(
            help: ArgumentHelp(
                "Seconds: the oldest an event may be and still be signed, and the longest stop after which missing numbers still count as rolled back.",
                discussion:
                    "Raise it only to link, once, what a job wrote while no chainer ran; keep the chainer running instead."
            ))
        var window: Int = 300

        func validate() throws {
            guard window >= 10 else { throw ValidationError("--window must be at least 10 seconds") }
        }

        func run() async throws {
            try await reportingErrors {
                let chainer = try options.chainer(create: true, window: window)
                // Heads linked before a crash that had no checkpoint yet.
                for alert in try await chainer.checkpointAllHeads().alerts { printError("ALERT: \(alert)") }
                if once {
                    print(AuditChainService.describe(try await chainer.linkPending()))
                } else {
                    try await ServiceGroup(
                        services: [
                            AuditChainService.make(
                                chainer: chainer, interval: .milliseconds(Int(interval * 1000)),
                                report: { printNow($0) })
                        ],
                        gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "enclave.audit")
                    ).run()
                }
                await chainer.maintenance.pool.close()
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk every chain (or one practice's) and report the first broken link of each; exit 1 on any.",
            discussion: """
                Checks every linked event's link with the audit key, retention records' authorization, \
                and each chain against the latest head in the checkpoint log (a tail cut off or rewritten \
                since). A missing or empty log fails once anything is linked (--no-checkpoints for a first run). Events not linked yet are counted; one left unlinked longer than \
                --max-unlinked-age is a break.
                """)
        @OptionGroup var options: AuditOptions

        @Option(help: "Verify only this practice's chain.") var tenant: String?
        @Flag(help: "Do not check against the checkpoint log.") var noCheckpoints = false
        @Option(help: "Seconds an event may wait for the chainer before it counts as a break.")
        var maxUnlinkedAge: Int = 300

        func validate() throws {
            if let tenant, UUID(uuidString: tenant) == nil { throw ValidationError("--tenant \(tenant) is not a UUID") }
        }

        func run() async throws {
            try await reportingErrors {
                let key = try options.loadKey()
                let verifier = AuditVerifier(
                    maintenance: try options.maintenanceContext(), key: key,
                    maxUnlinkedAge: .seconds(maxUnlinkedAge))
                var saved: Enclave.Checkpoint?
                if !noCheckpoints {
                    let path = try options.checkpointPath()
                    saved = try CheckpointLog(path: path, key: key).read()
                    try await verifier.requireCheckpoint(saved, log: path)
                    if saved == nil {
                        printError("note: the checkpoint log \(path) has no record yet; nothing is linked")
                    }
                }
                let report = try await verifier.verify(
                    chains: tenant.flatMap(UUID.init(uuidString:)).map { [$0] }, checkpoint: saved)
                for broken in report.breaks { printError("broken: \(broken)") }
                guard report.breaks.isEmpty else {
                    printError("\(report.breaks.count) of \(report.chains) chains are broken")
                    throw ExitCode.failure
                }
                print(
                    "ok: \(report.chains) chains, \(report.events) linked events verified"
                        + (saved == nil ? "" : " against the checkpoint log") + ", \(report.unlinked) not linked yet"
                        + (report.missing == 0 ? "" : ", \(report.missing) platform numbers rolled back"))
            }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append every chain's head the checkpoint log does not hold yet.",
            discussion: "The chainer does this after each batch; this command is for a log started afresh.")
        @OptionGroup var options: AuditOptions

        func run() async throws {
            try await reportingErrors {
                let chainer = try options.chainer(create: true)
                let pass = try await chainer.checkpointAllHeads()
                for alert in pass.alerts { printError("ALERT: \(alert)") }
                print("appended \(pass.checkpointed) chain heads to \(try options.checkpointPath())")
                if !pass.alerts.isEmpty { throw ExitCode.failure }
            }
        }
    }

    /// `enclave audit checkpoints repair`.
    struct Checkpoints: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Maintain the checkpoint log.", subcommands: [Repair.self])

        struct Repair: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Re-link a checkpoint log that two writers of an older release forked.",
                discussion: """
                    Stop every chainer first. Every record must authenticate under the audit key with \
                    the record it names as its predecessor; each is kept, in file order, and signed again \
                    after the one before it. The original stays beside the log as <log>.forked-<time>. \
                    A record that does not authenticate (altered, not forked) stops the repair, changing nothing.
                    """)
            @OptionGroup var options: AuditOptions

            func run() async throws {
                try await reportingErrors {
                    let path = try options.checkpointPath()
                    let repaired = try CheckpointLog.repair(path: path, key: try options.loadKey())
                    print(
                        repaired.relinked == 0
                            ? "\(path): \(repaired.records) records, not forked; nothing changed"
                            : "\(path): \(repaired.records) records kept, \(repaired.relinked) re-linked; the original is beside it (.forked-*)"
                    )
                }
            }
        }
    }
}
