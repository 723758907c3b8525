import ArgumentParser
import Enclave
import EnclaveWorkers
import Foundation
import Logging
import ServiceLifecycle

extension EnclaveCommand {
    /// `enclave webhooks`: outbound webhook delivery.
    struct Webhooks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Outbound webhooks to practices' own systems.", subcommands: [Deliver.self])

        /// `enclave webhooks deliver`: the delivery worker.
        struct Deliver: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Deliver due webhooks from the outbox (as the maintenance role, with the master key).",
                discussion: """
                    PHI goes only to active HTTPS endpoints marked BAA-covered, and each such delivery is \
                    recorded as phi.disclosed; other endpoints get a PHI-free payload. Failed deliveries \
                    are retried with exponential backoff. Without --once it runs until SIGINT or SIGTERM.
                    """)

            @OptionGroup var maintenance: MaintenanceOptions
            @Flag(help: "Make one pass and exit.") var once = false
            @Option(help: "Seconds between passes.") var interval: Double = 5
            @Option(help: "PEM certificates to trust for receivers instead of the system roots.") var caFile: String?
            @Option(help: "Seconds before the first retry (doubles each attempt, up to an hour).")
            var firstRetry: Double = 30

            func run() async throws {
                try await reportingErrors {
                    let keys = try await maintenance.keyManagement()
                    let transport = try HTTPWebhookTransport(caFile: caFile, egress: try EgressPolicy.fromEnvironment())
                    let deliverer = WebhookDeliverer(
                        maintenance: keys.maintenance, keys: keys.store, transport: transport,
                        policy: .init(firstDelay: firstRetry))
                    if once {
                        print(WebhookDeliveryService.describe(try await deliverer.deliverDue()))
                    } else {
                        let service = WebhookDeliveryService.make(
                            deliverer: deliverer, interval: .milliseconds(Int(interval * 1000)),
                            report: { printNow($0) })
                        try await ServiceGroup(
                            services: [service], gracefulShutdownSignals: [.sigterm, .sigint],
                            logger: Logger(label: "enclave.webhooks")
                        ).run()
                    }
                    try await transport.shutdown()
                    await keys.maintenance.pool.close()
                }
            }
        }
    }
}
