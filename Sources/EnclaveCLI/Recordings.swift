import ArgumentParser
import Enclave
import EnclaveWorkers
import Foundation
import Logging
import ServiceLifecycle

extension EnclaveCommand {
    /// `enclave recordings`: recordings a telephony provider hosts.
    struct Recordings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recordings that telephony providers host.", subcommands: [Fetch.self])

        /// `enclave recordings fetch`: the recording worker.
        struct Fetch: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Fetch queued provider recordings, seal them, then delete them at the provider.",
                discussion: """
                    Runs as the maintenance role, with the master key. Media is fetched over HTTPS only \
                    from the allowlisted hosts ($ENCLAVE_MEDIA_HOSTS, the setting `serve` checks callbacks \
                    against; default api.twilio.com) with the account's \
                    credentials, under the egress policy ($ENCLAVE_EGRESS_ALLOW). Each step is audited \
                    (recording.fetched, recording.provider_deleted) and retried with exponential backoff. \
                    Without --once it runs until SIGINT or SIGTERM.
                    """)

            @OptionGroup var maintenance: MaintenanceOptions
            @Flag(help: "Make one pass and exit.") var once = false
            @Option(help: "Seconds between passes.") var interval: Double = 5
            @Option(help: "PEM certificates to trust for the provider instead of the system roots.") var caFile: String?
            @Option(
                help:
                    "A host (name or name:port) media may come from, instead of $ENCLAVE_MEDIA_HOSTS; repeat for more.")
            var mediaHost: [String] = []
            @Option(help: "Seconds before the first retry (doubles each attempt, up to an hour).")
            var firstRetry: Double = 30

            func run() async throws {
                try await reportingErrors {
                    let keys = try await maintenance.keyManagement()
                    let transport = try HTTPWebhookTransport(
                        caFile: caFile, timeout: .seconds(30), egress: try EgressPolicy.fromEnvironment())
                    let fetcher = RecordingFetcher(
                        maintenance: keys.maintenance, keys: keys.store, transport: transport,
                        mediaHosts: mediaHost.isEmpty ? try MediaHosts.fromEnvironment() : Set(mediaHost),
                        policy: .init(firstDelay: firstRetry))
                    if once {
                        print(RecordingFetchService.describe(try await fetcher.fetchDue()))
                    } else {
                        try await ServiceGroup(
                            services: [
                                RecordingFetchService.make(
                                    fetcher: fetcher, interval: .milliseconds(Int(interval * 1000)),
                                    report: { printNow($0) })
                            ],
                            gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "enclave.recordings")
                        ).run()
                    }
                    try await transport.shutdown()
                    await keys.maintenance.pool.close()
                }
            }
        }
    }
}
