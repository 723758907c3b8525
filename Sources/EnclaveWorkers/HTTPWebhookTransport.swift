import AsyncHTTPClient
import Enclave
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// Webhook deliveries and provider media fetches over AsyncHTTPClient: certificates verified (against the system roots, or
/// a given CA file), no redirects (a redirect could carry PHI somewhere unvetted), a short
/// timeout, and egress control: the receiver's name is resolved and checked against the
/// `EgressPolicy` here, and the connection pinned to the address that passed, so DNS cannot
/// point it elsewhere in between. Each delivery gets a client of its own for that pin.
public final class HTTPWebhookTransport: WebhookTransport, MediaTransport {
    private let configuration: HTTPClient.Configuration
    private let timeout: TimeAmount
    private let egress: EgressPolicy

    /// - Parameters:
    ///   - caFile: PEM certificates to trust instead of the system roots (for a receiver with a
    ///     private CA, and for tests).
    ///   - egress: where deliveries may go; by default, `ENCLAVE_EGRESS_ALLOW` admits nothing
    ///     private (tests allowlist their own loopback receiver).
    public init(caFile: String? = nil, timeout: Duration = .seconds(10), egress: EgressPolicy = EgressPolicy()) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let caFile { tls.trustRoots = .file(caFile) }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        self.configuration = configuration
        self.timeout = .seconds(timeout.components.seconds)
        self.egress = egress
    }

    public func post(_ url: URL, headers: [(String, String)], body: [UInt8]) async throws -> Int {
        try await exchange(url, .POST, headers: headers, body: body) { response in
            // Read (and drop) a bounded amount of the answer before closing.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return Int(response.status.code)
        }
    }

    /// A request on a client of its own, pinned to the address the egress policy passed.
    private func exchange<T>(
        _ url: URL, _ method: HTTPMethod, headers: [(String, String)], body: [UInt8]? = nil,
        _ handle: (HTTPClientResponse) async throws -> T
    ) async throws -> T {
        guard let host = url.host, !host.isEmpty else {
            throw EgressPolicy.Refusal(host: "?", reason: "the URL has no host")
        }
        let address = try await egress.destination(for: host)
        var pinned = configuration
        if EgressPolicy.IPAddress(host) == nil {
            // Connect to the checked address; TLS still verifies the certificate for `host`.
            pinned.dnsOverride = [host: address.description]
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: pinned)
        do {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = method
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response = try await client.execute(request, timeout: timeout)
            let result = try await handle(response)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Media a provider hosts (recordings), under the same rules as deliveries.
    public func get(
        _ url: URL, headers: [(String, String)], response: (Int, String?) throws -> Bool,
        piece: ([UInt8]) async throws -> Void
    ) async throws {
        try await exchange(url, .GET, headers: headers) { answer in
            guard try response(Int(answer.status.code), answer.headers.first(name: "content-type")) else {
                _ = try? await answer.body.collect(upTo: 64 * 1024)
                return
            }
            for try await buffer in answer.body { try await piece(Array(buffer.readableBytesView)) }
        }
    }

    public func delete(_ url: URL, headers: [(String, String)]) async throws -> Int {
        try await exchange(url, .DELETE, headers: headers) { answer in
            _ = try? await answer.body.collect(upTo: 64 * 1024)
            return Int(answer.status.code)
        }
    }

    /// Nothing to close: each delivery's client is closed after it.
    public func shutdown() async throws {}
}
