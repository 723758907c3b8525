import Enclave
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import OpenAPIHummingbird

/// Builds the HTTPS server: TLS by default; plain HTTP only on loopback and only when asked.
public enum EnclaveServer {
    /// How the server listens.
    public struct Listen: Sendable {
        public var host: String
        public var port: Int
        /// PEM certificate chain and private key; nil means plain HTTP.
        public var tls: (certificate: String, key: String)?

        public init(host: String = "127.0.0.1", port: Int = 8443, tls: (certificate: String, key: String)?) {
            self.host = host
            self.port = port
            self.tls = tls
        }
    }

    /// The application, ready to run as a service (graceful shutdown on SIGTERM/SIGINT).
    public static func application(
        api: EnclaveAPI,
        listen: Listen,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        if listen.tls == nil, !["127.0.0.1", "::1", "localhost"].contains(listen.host) {
            throw ConfigurationError("plain HTTP is allowed on loopback only; give --tls-cert and --tls-key")
        }
        let router = Router(context: EnclaveRequestContext.self)
        router.add(middleware: RequestValuesMiddleware(metrics: api.metrics))
        // Compact JSON, URLs unescaped (problem types are URLs).
        try api.registerHandlers(
            on: router, configuration: .init(jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes]))
        let server: HTTPServerBuilder
        if let tls = listen.tls {
            let configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.key, format: .pem)))
            server = try .tls(.http1(), tlsConfiguration: configuration)
        } else {
            server = .http1()
        }
        return Application(
            router: router, server: server,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "enclave"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? listen.port) })
    }
}
