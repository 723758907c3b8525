import ArgumentParser
import Enclave
import Foundation
import Sealing

extension EnclaveCommand {
    /// `enclave keys`: master keys and tenants' data keys.
    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, rotate and destroy encryption keys.",
            subcommands: [Init.self, Status.self, Rotate.self, RotateMaster.self, DestroyMaster.self]
        )
    }
}

extension EnclaveCommand.Keys {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new master key file (mode 0600). The key is never printed.")

        @Option(help: "Where to write it (default: $ENCLAVE_MASTER_KEY_FILE).")
        var file: String?

        func run() async throws {
            try await reportingErrors {
                let path = try MaintenanceOptions.masterKeyPath(flag: file)
                let created = try MasterKeyFile.create(path: path)
                print(
                    "wrote master key version 1 (key id \(try created.keyIdentifier(version: 1))) to \(path), mode 0600"
                )
                print("keep it outside the database and its backups; losing it makes every practice's data unreadable")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show master key versions and, per practice, data key versions and the rows each seals.")
        @OptionGroup var options: MaintenanceOptions

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let registry = try await MasterKeyRegistry.entries(keys.maintenance.pool)
                let statuses = try await keys.status()
                var wrapsByVersion: [UInt32: Int] = [:]
                for status in statuses {
                    for key in status.keys where key.state != "destroyed" {
                        wrapsByVersion[key.masterKeyVersion, default: 0] += 1
                    }
                }
                print("master keys")
                print(
                    table(
                        header: ["version", "state", "key id", "wraps data keys"],
                        rows: registry.map {
                            ["\($0.version)", $0.state, $0.keyID, "\(wrapsByVersion[$0.version] ?? 0)"]
                        }))
                print("")
                print("practice keys")
                var rows: [[String]] = []
                for status in statuses {
                    for key in status.keys {
                        let used = key.purpose == .data ? "\(status.rowsByVersion[key.version] ?? 0)" : "-"
                        rows.append([
                            status.tenantID.uuidString.lowercased(), key.purpose.rawValue, "\(key.version)", key.state,
                            "\(key.masterKeyVersion)", used,
                        ])
                    }
                }
                print(table(header: ["practice", "purpose", "version", "state", "master key", "rows"], rows: rows))
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new data key version take all new writes; older versions still open old data.")
        @OptionGroup var options: MaintenanceOptions

        @Option(help: "The practice whose data key to rotate.")
        var tenant: String?

        @Flag(help: "Rotate every practice's data key.")
        var all = false

        func validate() throws {
            guard (tenant != nil) != all else { throw ValidationError("give either --tenant ID or --all") }
            if let tenant, UUID(uuidString: tenant) == nil { throw ValidationError("--tenant \(tenant) is not a UUID") }
        }

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let tenants: [UUID]
                if let tenant, let id = UUID(uuidString: tenant) {
                    guard try await keys.maintenance.tenantIDs().contains(id) else {
                        throw ConfigurationError("--tenant \(tenant): no such practice")
                    }
                    tenants = [id]
                } else {
                    tenants = try await keys.maintenance.tenantIDs()
                }
                let rotated = try await keys.rotate(tenants: tenants)
                for (tenantID, version) in rotated.prefix(20) {
                    print("practice \(tenantID.uuidString.lowercased()): data key version \(version) is active")
                }
                if rotated.count > 20 { print("… and \(rotated.count - 20) more") }
                print("rotated \(rotated.count) practices")
            }
        }
    }

    struct RotateMaster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-master",
            abstract: "Add a master key version and re-wrap every data key under it (no data re-encryption).",
            discussion: "Safe to run again after an interruption: it finishes the rotation it started."
        )
        @OptionGroup var options: MaintenanceOptions

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let rotation = try await keys.rotateMaster()
                if rotation.resumed { print("finished an interrupted rotation") }
                print(
                    "master key version \(rotation.activeVersion) is active; re-wrapped \(rotation.rewrapped) data keys"
                )
                for version in rotation.destroyable {
                    print(
                        "master key version \(version) wraps no live data key now; backups taken before this rotation "
                            + "still need it. Once they have expired: enclave keys destroy-master --version \(version)")
                }
            }
        }
    }

    struct DestroyMaster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "destroy-master",
            abstract: "Remove a retired master key version for good; refused while any data key depends on it."
        )
        @OptionGroup var options: MaintenanceOptions

        @Option(help: "The master key version to destroy.")
        var version: UInt32

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                try await keys.destroyMaster(version: version)
                print(
                    "destroyed master key version \(version); backups whose data keys it wrapped can no longer be read")
            }
        }
    }
}
