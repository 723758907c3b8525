import ArgumentParser
import Enclave
import EnclaveConsole
import EnclaveHTTP
import Foundation
import Logging
import Postgres
import Sealing
import ServiceLifecycle

extension EnclaveCommand {
    /// `enclave serve`: the HTTPS API.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the API over TLS (graceful shutdown on SIGTERM or SIGINT).")

        @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
        @Option(help: "Port to listen on.") var port: Int = 8443
        @Option(help: "PEM certificate chain.") var tlsCert: String?
        @Option(help: "PEM private key.") var tlsKey: String?
        @Flag(help: "Serve plain HTTP (loopback only).") var insecureHTTP = false
        @Option(help: "The master key file (default: $ENCLAVE_MASTER_KEY_FILE).") var masterKeyFile: String?
        @Option(help: "Database connections.") var connections: Int = 10
        @Option(help: "Seconds a session may stay idle before it ends (60 to 3600).") var idleTimeout: Int = 900
        @Option(
            help: """
                The URL providers reach this server at, such as https://enclave.example.com (default: \
                $ENCLAVE_PUBLIC_URL, else https:// and each request's Host). Providers sign the URL they call.
                """)
        var publicURL: String?
        @Option(help: "Address of the metrics listener (plain HTTP; keep it off public networks).")
        var metricsHost: String = "127.0.0.1"
        @Option(help: "Port of the metrics listener (GET /metrics, Prometheus text).") var metricsPort: Int = 9464
        @Option(
            name: .customLong("trusted-proxy"), parsing: .upToNextOption,
            help:
                "Address blocks (CIDR) of reverse proxies whose X-Forwarded-For names the client; anyone else's is ignored."
        )
        var trustedProxies: [String] = []

        func validate() throws {
            guard (60...3600).contains(idleTimeout) else {
                throw ValidationError("--idle-timeout \(idleTimeout) is not between 60 and 3600 seconds")
            }
            if let url = publicURL ?? ProcessInfo.processInfo.environment["ENCLAVE_PUBLIC_URL"] {
                guard let parsed = URL(string: url), parsed.scheme == "https", parsed.host != nil,
                    parsed.query == nil, parsed.path.isEmpty || parsed.path == "/"
                else { throw ValidationError("the public URL is https://host[:port], with no path: \(url)") }
            }
            for block in trustedProxies where EgressPolicy.Block(block) == nil {
                throw ValidationError("--trusted-proxy \(block) is not an address or a CIDR block")
            }
            if !insecureHTTP, tlsCert == nil || tlsKey == nil {
                throw ValidationError("give --tls-cert and --tls-key (or --insecure-http on loopback)")
            }
        }

        func run() async throws {
            try await reportingErrors {
                let services = try await EnclaveServices.open(
                    database: try ConnectionConfiguration.forRole(.app),
                    authDatabase: try ConnectionConfiguration.forRole(.auth),
                    masterKeyFile: try MaintenanceOptions.masterKeyPath(flag: masterKeyFile),
                    options: .init(
                        connections: connections, identity: .init(idleTimeout: .seconds(idleTimeout)),
                        mediaHosts: try MediaHosts.fromEnvironment()))
                let api = EnclaveAPI(
                    services: services,
                    publicBaseURL: publicURL ?? ProcessInfo.processInfo.environment["ENCLAVE_PUBLIC_URL"])
                let app = try EnclaveServer.application(
                    api: api,
                    listen: .init(
                        host: host, port: port,
                        tls: insecureHTTP ? nil : tlsCert.flatMap { cert in tlsKey.map { (cert, $0) } },
                        trustedProxies: trustedProxies.compactMap(EgressPolicy.Block.init)),
                    console: try await Console.load(services: services),
                    onRunning: { port in printNow("serving on \(insecureHTTP ? "http" : "https")://\(host):\(port)") })
                let metrics = EnclaveServer.metricsApplication(
                    api: api, host: metricsHost, port: metricsPort,
                    onRunning: { port in printNow("metrics on http://\(metricsHost):\(port)/metrics") })
                // Services stop in reverse order: the listeners finish their requests, then the
                // pool closes.
                try await ServiceGroup(
                    services: [services.pool, services.authPool, app, metrics],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: Logger(label: "enclave.serve")
                ).run()
            }
        }
    }
}
