import AsyncHTTPClient
import Enclave
import Foundation
import NIOCore
import NIOSSL

/// Webhook deliveries over AsyncHTTPClient: certificates verified (against the system roots, or
/// a given CA file), no redirects (a redirect could carry PHI somewhere unvetted), a short
/// timeout.
public final class HTTPWebhookTransport: WebhookTransport {
    private let client: HTTPClient
    private let timeout: TimeAmount

    /// - Parameter caFile: PEM certificates to trust instead of the system roots (for a
    ///   receiver with a private CA, and for tests).
    public init(caFile: String? = nil, timeout: Duration = .seconds(10)) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caFile { tls.trustRoots = .file(caFile) }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.timeout = .seconds(timeout.components.seconds)
    }

    public func post(_ url: URL, headers: [(String, String)], body: [UInt8]) async throws -> Int {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: timeout)
        // Read (and drop) a bounded amount of the answer so the connection can be reused.
        _ = try? await response.body.collect(upTo: 64 * 1024)
        return Int(response.status.code)
    }

    /// Closes the client's connections.
    public func shutdown() async throws {
        try await client.shutdown()
    }
}
