import ArgumentParser
import Enclave
import Foundation

extension EnclaveCommand {
    /// `enclave practices`: the tenants.
    struct Practices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage practices (tenants).",
            subcommands: [Create.self]
        )
    }
}

extension EnclaveCommand.Practices {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a practice (HIPAA mode on) with its first data and index keys.")
        @OptionGroup var options: MaintenanceOptions

        @Option(help: "The practice's name.")
        var name: String

        func run() async throws {
            try await reportingErrors {
                let keys = try await options.keyManagement()
                let id = try await PracticeRegistry(keys: keys).create(name: name)
                print(id.uuidString.lowercased())
            }
        }
    }
}
