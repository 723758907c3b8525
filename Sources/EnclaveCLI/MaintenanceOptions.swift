import ArgumentParser
import Enclave
import Foundation
import Postgres

/// Options of commands that work on tenants as `enclave_maint` with the master key file.
struct MaintenanceOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "The maintenance role's PostgreSQL URL (default: $ENCLAVE_MAINT_DATABASE_URL).",
            discussion: "Prefer the variable: arguments show in process lists."
        )
    )
    var databaseURL: String?

    @Option(help: "The master key file (default: $ENCLAVE_MASTER_KEY_FILE).")
    var masterKeyFile: String?

    @Flag(help: "Allow a connection to a non-loopback host without sslmode=verify-full.")
    var insecureTransport = false

    /// The master key file's path, from the flag or the environment.
    func masterKeyPath() throws -> String { try Self.masterKeyPath(flag: masterKeyFile) }

    /// The master key file's path: `flag` if given, else `$ENCLAVE_MASTER_KEY_FILE`.
    static func masterKeyPath(flag: String?) throws -> String {
        if let flag, !flag.isEmpty { return flag }
        guard let path = ProcessInfo.processInfo.environment["ENCLAVE_MASTER_KEY_FILE"], !path.isEmpty else {
            throw ConfigurationError(
                "ENCLAVE_MASTER_KEY_FILE is not set: it must name the master key file (create one with `enclave keys init`)"
            )
        }
        return path
    }

    /// Opens the key machinery: loads and checks the master key file against the database
    /// before any work, so a wrong or unsafe file stops the command at once.
    func keyManagement() async throws -> KeyManagement {
        let path = try masterKeyPath()
        let configuration = try ConnectionConfiguration.forRole(
            .maint, override: databaseURL, allowInsecureTransport: insecureTransport)
        let pool = ConnectionPool(configuration: configuration, options: .init(maxConnections: 2))
        return try await KeyManagement.open(
            masterKeyFile: path, maintenance: MaintenanceContext(pool: pool), log: { print($0) })
    }
}
