import ArgumentParser
import Enclave
import Foundation
import Postgres
import Sealing

extension EnclaveCommand {
    /// `enclave audit`: verify the hash chains and write checkpoints.
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the audit trail's hash chains and write checkpoints.",
            subcommands: [Verify.self, Checkpoint.self]
        )
    }
}

/// Options for the audit commands.
struct AuditOptions: ParsableArguments {
    @OptionGroup var maintenance: MaintenanceOptions

    @Option(
        help: ArgumentHelp(
            "The key file that authenticates checkpoints (default: $ENCLAVE_AUDIT_KEY_FILE).",
            discussion: "Keep it outside the database, like the master key file."))
    var key: String?

    func keyPath() throws -> String {
        if let key, !key.isEmpty { return key }
        guard let path = ProcessInfo.processInfo.environment["ENCLAVE_AUDIT_KEY_FILE"], !path.isEmpty else {
            throw ConfigurationError("ENCLAVE_AUDIT_KEY_FILE is not set: it must name the audit checkpoint key file")
        }
        return path
    }

    func verifier() throws -> AuditVerifier {
        let configuration = try ConnectionConfiguration.forRole(
            .maint, override: maintenance.databaseURL, allowInsecureTransport: maintenance.insecureTransport)
        return AuditVerifier(
            maintenance: MaintenanceContext(
                pool: ConnectionPool(configuration: configuration, options: .init(maxConnections: 2))))
    }
}

extension EnclaveCommand.Audit {
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk every chain (or one practice's) and report the first broken link of each; exit 1 on any.")
        @OptionGroup var options: AuditOptions

        @Option(help: "Verify only this practice's chain.") var tenant: String?

        @Option(help: "A checkpoint file from `enclave audit checkpoint`, to also catch a truncated tail.")
        var checkpoint: String?

        func validate() throws {
            if let tenant, UUID(uuidString: tenant) == nil { throw ValidationError("--tenant \(tenant) is not a UUID") }
        }

        func run() async throws {
            try await reportingErrors {
                var saved: Enclave.Checkpoint?
                if let checkpoint {
                    guard let data = FileManager.default.contents(atPath: checkpoint) else {
                        throw ConfigurationError("--checkpoint \(checkpoint): cannot be read")
                    }
                    saved = try Enclave.Checkpoint.decode(
                        data, key: try MasterKeyFile.load(path: try options.keyPath()))
                }
                let report = try await options.verifier().verify(
                    chains: tenant.flatMap(UUID.init(uuidString:)).map { [$0] }, checkpoint: saved)
                for broken in report.breaks { printError("broken: \(broken)") }
                guard report.breaks.isEmpty else {
                    printError("\(report.breaks.count) of \(report.chains) chains are broken")
                    throw ExitCode.failure
                }
                print(
                    "ok: \(report.chains) chains, \(report.events) events verified"
                        + (saved == nil ? "" : " against the checkpoint"))
            }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every chain's head, authenticated with the audit key, to a file kept elsewhere.",
            discussion: "Creates the key file (mode 0600) if it does not exist yet.")
        @OptionGroup var options: AuditOptions

        @Option(help: "Where to write the checkpoint.") var out: String

        func run() async throws {
            try await reportingErrors {
                let path = try options.keyPath()
                let key: MasterKeyFile
                if FileManager.default.fileExists(atPath: path) {
                    key = try MasterKeyFile.load(path: path)
                } else {
                    key = try MasterKeyFile.create(path: path)
                    print("created audit key file \(path) (mode 0600); keep it outside the database")
                }
                let heads = try await options.verifier().heads()
                let data = try Enclave.Checkpoint(heads: heads).encoded(key: key)
                guard FileManager.default.createFile(atPath: out, contents: data) else {
                    throw ConfigurationError("--out \(out): cannot be written")
                }
                print("wrote a checkpoint of \(heads.count) chains to \(out)")
            }
        }
    }
}
