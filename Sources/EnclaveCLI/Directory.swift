import ArgumentParser
import Enclave
import Foundation
import Postgres

extension MaintenanceOptions {
    /// The operators' directory, as `enclave_maint`.
    func directory() throws -> Directory {
        let configuration = try ConnectionConfiguration.forRole(
            .maint, override: databaseURL, allowInsecureTransport: insecureTransport)
        return Directory(pool: ConnectionPool(configuration: configuration, options: .init(maxConnections: 2)))
    }
}

extension EnclaveCommand {
    /// `enclave agencies`.
    struct Agencies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Manage agencies.", subcommands: [Create.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create an agency.")
            @OptionGroup var options: MaintenanceOptions
            @Option(help: "The agency's name.") var name: String

            func run() async throws {
                try await reportingErrors {
                    print(try await options.directory().createAgency(name: name).uuidString.lowercased())
                }
            }
        }
    }

    /// `enclave users`.
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage users and their memberships.",
            subcommands: [Create.self, Grant.self, Disable.self, Unlock.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a user; the password is read from standard input, never from arguments.")
            @OptionGroup var options: MaintenanceOptions
            @Option(help: "Email address (unique, case-insensitive).") var email: String
            @Option(help: "Display name.") var name: String

            func run() async throws {
                try await reportingErrors {
                    guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                        throw ConfigurationError("give the password on standard input")
                    }
                    print(
                        try await options.directory().createUser(email: email, displayName: name, password: password)
                            .uuidString.lowercased())
                }
            }
        }

        struct Grant: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Give a user a role in an agency or a practice.")
            @OptionGroup var options: MaintenanceOptions
            @Option(help: "The user's email.") var email: String
            @Option(help: "agency_admin, agency_member, practice_owner or practice_staff.") var role: String
            @Option(help: "The agency (for agency roles).") var agency: String?
            @Option(help: "The practice (for practice roles).") var practice: String?

            func validate() throws {
                guard Directory.Role(rawValue: role) != nil else {
                    throw ValidationError(
                        "--role must be one of \(Directory.Role.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                for (flag, value) in [("--agency", agency), ("--practice", practice)] {
                    if let value, UUID(uuidString: value) == nil {
                        throw ValidationError("\(flag) \(value) is not a UUID")
                    }
                }
            }

            func run() async throws {
                try await reportingErrors {
                    let directory = try options.directory()
                    let user = try await directory.user(email: email)
                    try await directory.grant(
                        user: user, role: Directory.Role(rawValue: role) ?? .practiceStaff,
                        agency: agency.flatMap(UUID.init(uuidString:)),
                        practice: practice.flatMap(UUID.init(uuidString:)))
                    print("granted \(role)")
                }
            }
        }

        struct Disable: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Disable a user: every session ends now.")
            @OptionGroup var options: MaintenanceOptions
            @Option(help: "The user's email.") var email: String

            func run() async throws {
                try await reportingErrors {
                    let directory = try options.directory()
                    try await directory.disable(user: try await directory.user(email: email))
                    print("disabled \(email); every session ended")
                }
            }
        }

        /// `enclave users unlock`.
        struct Unlock: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Let a user whose one-time codes were locked (too many wrong codes) try again.")
            @OptionGroup var options: MaintenanceOptions
            @Option(help: "The user's email.") var email: String

            func run() async throws {
                try await reportingErrors {
                    try await options.directory().unlockCodes(email: email)
                    print("unlocked the one-time codes of \(email)")
                }
            }
        }
    }

    /// `enclave baa`.
    struct Agreements: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "baa", abstract: "Business Associate Agreements.", subcommands: [List.self, Sweep.self])

        struct Sweep: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Record baa.expired once for each agreement whose expiry passed (run periodically).")
            @OptionGroup var options: MaintenanceOptions

            func run() async throws {
                try await reportingErrors {
                    print("recorded \(try await options.directory().recordExpiredAgreements()) expired agreements")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List agreements and their states.")
            @OptionGroup var options: MaintenanceOptions
            @Option(help: "Only this practice's agreements.") var practice: String?

            func validate() throws {
                if let practice, UUID(uuidString: practice) == nil {
                    throw ValidationError("--practice \(practice) is not a UUID")
                }
            }

            func run() async throws {
                try await reportingErrors {
                    let rows = try await options.directory().agreements(
                        practice: practice.flatMap(UUID.init(uuidString:)))
                    let formatter = ISO8601DateFormatter()
                    print(
                        table(
                            header: ["id", "agency", "practice", "status", "scopes", "expires"],
                            rows: rows.map {
                                [
                                    $0.id.uuidString.lowercased(), $0.agency, $0.practice, $0.status,
                                    $0.scopes.joined(separator: ","),
                                    $0.expiresAt.map(formatter.string(from:)) ?? "never",
                                ]
                            }))
                }
            }
        }
    }
}
