import ArgumentParser
import Enclave
import EnclaveWorkers
import Foundation
import Logging
import Postgres
import ServiceLifecycle

extension EnclaveCommand {
    /// `enclave compliance`: the compliance worker (retention, alerts, email).
    struct Compliance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retention purges, access alerts and PHI-free email.", subcommands: [Work.self])

        struct Work: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Purge expired data, raise access alerts and send notification email.",
                discussion: """
                    As the maintenance role. Each pass purges what practices' retention says has expired \
                    (never anything under a legal hold; each batch records retention.purged), raises the \
                    access alerts due, and sends the outbox's notifications over SMTP: ENCLAVE_SMTP_URL \
                    (smtp://host:port; STARTTLS required except on loopback), ENCLAVE_SMTP_USERNAME, \
                    ENCLAVE_SMTP_PASSWORD, ENCLAVE_SMTP_CA_FILE, ENCLAVE_MAIL_FROM, ENCLAVE_PUBLIC_URL (links), \
                    ENCLAVE_MAIL_TEMPLATES (a directory of <event>.txt overrides, checked at start). \
                    Without ENCLAVE_SMTP_URL no mail is sent. Without --once it runs until SIGINT or SIGTERM.
                    """)
            @OptionGroup var maintenance: MaintenanceOptions
            @Flag(help: "Make one pass of each and exit.") var once = false
            @Option(help: "Seconds between purge and alert passes.") var interval: Double = 60
            @Option(help: "Seconds between mail passes.") var mailInterval: Double = 5

            func run() async throws {
                try await reportingErrors {
                    let environment = ProcessInfo.processInfo.environment
                    let operations = try maintenance.complianceOperations()
                    let context = operations.maintenance
                    let templates = try MailTemplates.load(directory: environment["ENCLAVE_MAIL_TEMPLATES"])
                    let mailer = try SMTPTransport.fromEnvironment().map {
                        Mailer(
                            maintenance: context, transport: $0, templates: templates,
                            from: environment["ENCLAVE_MAIL_FROM"] ?? "enclave@localhost",
                            consoleURL: environment["ENCLAVE_PUBLIC_URL"] ?? "https://127.0.0.1:8443")
                    }
                    if mailer == nil { printNow("compliance: ENCLAVE_SMTP_URL is not set; no email is sent") }
                    if once {
                        print(
                            ComplianceWorkService.describe(try await ComplianceWorkService.pass(operations: operations))
                        )
                        if let mailer { print(ComplianceWorkService.describe(try await mailer.deliverDue())) }
                    } else {
                        var services: [any Service] = [
                            ComplianceWorkService.make(
                                operations: operations, interval: .milliseconds(Int(interval * 1000)),
                                report: { printNow($0) })
                        ]
                        if let mailer {
                            services.append(
                                ComplianceWorkService.mail(
                                    mailer: mailer, interval: .milliseconds(Int(mailInterval * 1000)),
                                    report: { printNow($0) }))
                        }
                        try await ServiceGroup(
                            services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                            logger: Logger(label: "enclave.compliance")
                        ).run()
                    }
                    await context.pool.close()
                }
            }
        }
    }

    /// `enclave breakglass`: emergency access oversight.
    struct BreakGlassCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "breakglass", abstract: "Emergency (break-glass) access: list it, and name who may open it.",
            subcommands: [List.self, Grant.self, Revoke.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List every break-glass access, newest first.")
            @OptionGroup var maintenance: MaintenanceOptions

            func run() async throws {
                try await reportingErrors {
                    let operations = try maintenance.complianceOperations()
                    let all = try await operations.breakGlass()
                    if all.isEmpty { print("no break-glass access has been opened") }
                    let format = ISO8601DateFormatter()
                    for glass in all {
                        let state =
                            glass.active
                            ? "ACTIVE until \(format.string(from: glass.expiresAt))"
                            : "ended \(format.string(from: glass.endedAt ?? glass.expiresAt))"
                        print(
                            "\(glass.id.uuidString.lowercased())  \(format.string(from: glass.openedAt))  "
                                + "\(glass.practiceName) (\(glass.practiceID.uuidString.lowercased()))  "
                                + "\(glass.responderEmail)  \(state)  "
                                + (glass.acknowledgedAt == nil ? "not acknowledged" : "acknowledged"))
                        print("    reason: \(glass.reason)")
                    }
                    await operations.maintenance.pool.close()
                }
            }
        }

        struct Grant: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "grant-responder", abstract: "Let a user open break-glass access (a platform responder).")
            @OptionGroup var maintenance: MaintenanceOptions
            @Argument(help: "The user's email.") var email: String

            func run() async throws {
                try await reportingErrors {
                    let operations = try maintenance.complianceOperations()
                    try await operations.setResponder(email: email, true)
                    print("\(email) is a platform responder")
                    await operations.maintenance.pool.close()
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "revoke-responder",
                abstract: "Withdraw the responder role; the user's open break-glass ends at once.")
            @OptionGroup var maintenance: MaintenanceOptions
            @Argument(help: "The user's email.") var email: String

            func run() async throws {
                try await reportingErrors {
                    let operations = try maintenance.complianceOperations()
                    try await operations.setResponder(email: email, false)
                    print("\(email) is no longer a platform responder")
                    await operations.maintenance.pool.close()
                }
            }
        }
    }

    /// `enclave holds`: legal holds, for operators.
    struct Holds: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Legal holds: while one is active, nothing it covers is purged and the practice cannot be offboarded.",
            subcommands: [List.self, Place.self, Release.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "A practice's legal holds.")
            @OptionGroup var maintenance: MaintenanceOptions
            @Argument(help: "The practice.") var practice: String

            func run() async throws {
                try await reportingErrors {
                    guard let id = UUID(uuidString: practice) else {
                        throw ValidationError("\(practice) is not a practice id (UUID)")
                    }
                    let operations = try maintenance.complianceOperations()
                    for hold in try await operations.holds(practice: id) {
                        print(
                            "\(hold.id.uuidString.lowercased())  \(hold.wholePractice ? "whole practice" : "\(hold.leads) leads")  "
                                + "by \(hold.placedBy)  \(hold.releasedAt == nil ? "ACTIVE" : "released")  \(hold.reason)"
                        )
                    }
                    await operations.maintenance.pool.close()
                }
            }
        }

        struct Place: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Place a hold on a practice, or on some of its leads.")
            @OptionGroup var maintenance: MaintenanceOptions
            @Argument(help: "The practice.") var practice: String
            @Option(help: "Why (3 to 500 characters; no PHI).") var reason: String
            @Option(parsing: .upToNextOption, help: "Hold only these leads (ids).") var leads: [String] = []

            func run() async throws {
                try await reportingErrors {
                    guard let id = UUID(uuidString: practice) else {
                        throw ValidationError("\(practice) is not a practice id (UUID)")
                    }
                    let leadIDs = try leads.map {
                        guard let lead = UUID(uuidString: $0) else {
                            throw ValidationError("--leads: \($0) is not a UUID")
                        }
                        return lead
                    }
                    let operations = try maintenance.complianceOperations()
                    let hold = try await operations.placeHold(
                        practice: id, leads: leadIDs.isEmpty ? nil : leadIDs, reason: reason)
                    print("placed legal hold \(hold.uuidString.lowercased())")
                    await operations.maintenance.pool.close()
                }
            }
        }

        struct Release: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Release a legal hold.")
            @OptionGroup var maintenance: MaintenanceOptions
            @Argument(help: "The hold.") var hold: String

            func run() async throws {
                try await reportingErrors {
                    guard let id = UUID(uuidString: hold) else {
                        throw ValidationError("\(hold) is not a hold id (UUID)")
                    }
                    let operations = try maintenance.complianceOperations()
                    print(try await operations.releaseHold(id) ? "released" : "the hold was already released")
                    await operations.maintenance.pool.close()
                }
            }
        }
    }
}

extension MaintenanceOptions {
    /// The compliance operations over a maintenance pool (no master key needed).
    func complianceOperations() throws -> ComplianceOperations {
        let configuration = try ConnectionConfiguration.forRole(
            .maint, override: databaseURL, allowInsecureTransport: insecureTransport)
        return ComplianceOperations(
            maintenance: MaintenanceContext(
                pool: ConnectionPool(configuration: configuration, options: .init(maxConnections: 2))))
    }
}
