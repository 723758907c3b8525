import Enclave
import EnclaveConsole
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOCore
import NIOSSL
import OpenAPIHummingbird
import OpenAPIRuntime

/// Builds the HTTPS server: TLS by default; plain HTTP only on loopback and only when asked.
public enum EnclaveServer {
    /// How the server listens.
    public struct Listen: Sendable {
        public var host: String
        public var port: Int
        /// PEM certificate chain and private key; nil means plain HTTP.
        public var tls: (certificate: String, key: String)?
        /// The proxies whose `X-Forwarded-For` names the client (anyone else's is ignored).
        public var trustedProxies: [EgressPolicy.Block]
        /// How long a client may leave a response unread (its connection unwritable) before
        /// the connection is closed.
        public var writeTimeout: Duration
        /// How long a connection may sit with no request before it is closed.
        public var idleTimeout: Duration

        public init(
            host: String = "127.0.0.1", port: Int = 8443, tls: (certificate: String, key: String)?,
            trustedProxies: [EgressPolicy.Block] = [], writeTimeout: Duration = .seconds(30),
            idleTimeout: Duration = .seconds(60)
        ) {
            self.host = host
            self.port = port
            self.tls = tls
            self.trustedProxies = trustedProxies
            self.writeTimeout = writeTimeout
            self.idleTimeout = idleTimeout
        }
    }

    /// The application, ready to run as a service (graceful shutdown on SIGTERM/SIGINT).
    public static func application(
        api: EnclaveAPI,
        listen: Listen,
        console: Console? = nil,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        if listen.tls == nil, !["127.0.0.1", "::1", "localhost"].contains(listen.host) {
            throw ConfigurationError("plain HTTP is allowed on loopback only; give --tls-cert and --tls-key")
        }
        var api = api
        api.writeTimeout = listen.writeTimeout
        let router = Router(context: EnclaveRequestContext.self)
        let routes = RouteTable()
        // Outermost first: each middleware does one job (Middleware/).
        router.add(middleware: RequestContextMiddleware(trustedProxies: listen.trustedProxies))
        router.add(middleware: AccessLogMiddleware())
        router.add(middleware: MetricsMiddleware(metrics: api.metrics))
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: ProblemMiddleware(routes: routes))
        router.add(middleware: BodyLimitMiddleware())
        // Compact JSON, URLs unescaped (problem types are URLs); dates with or without fractions.
        try api.registerHandlers(
            on: router,
            configuration: .init(
                dateTranscoder: RFC3339DateTranscoder(), jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes]))
        // The console's pages learn who the client is from the same middleware as the API.
        console?.addRoutes(to: router, client: { RequestValues.current.context.client })
        routes.load(router.routes.map { (path: $0.path.description, method: $0.method.rawValue) })
        let writeTimeout = TimeAmount(listen.writeTimeout)
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [WriteTimeoutHandler(timeout: writeTimeout)],
            idleTimeout: TimeAmount(listen.idleTimeout))
        let server: HTTPServerBuilder
        if let tls = listen.tls {
            let configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.key, format: .pem)))
            server = try .tls(.http1(configuration: http1), tlsConfiguration: configuration)
        } else {
            server = .http1(configuration: http1)
        }
        return Application(
            router: router, server: server,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "enclave"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? listen.port) })
    }
}

extension EnclaveServer {
    /// The metrics listener: `GET /metrics` in Prometheus text, plain HTTP, apart from the API so
    /// that metrics are never public. Loopback only unless the operator names another address.
    public static func metricsApplication(
        api: EnclaveAPI,
        host: String,
        port: Int,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        let metrics = api.metrics
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "enclave-metrics"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) })
    }
}

/// RFC 3339 dates: read with or without fractional seconds (clients send both), written
/// without.
struct RFC3339DateTranscoder: DateTranscoder {
    func encode(_ date: Date) throws -> String {
        date.formatted(.iso8601)
    }

    func decode(_ text: String) throws -> Date {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try Date.ISO8601FormatStyle().parse(text)
    }
}
