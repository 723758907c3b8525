import AsyncHTTPClient
import EnclaveAPIClient
import EnclaveTestSupport
import Foundation
import HTTPTypes
import NIOSSL
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime

extension LiveServer {
    /// A client generated from the API's spec, over HTTPS to this server, signed in with `token`
    /// when one is given. Every exchange is recorded for `scripts/check-openapi`.
    public func client(token: String? = nil) throws -> Client {
        guard let url = URL(string: "https://localhost:\(port)") else { throw TestSetupError("no server URL") }
        return Client(
            serverURL: url,
            transport: AsyncHTTPClientTransport(configuration: .init(client: httpClient, timeout: .seconds(30))),
            middlewares: [BearerToken(token: token), ExchangeRecorder()])
    }

    /// An HTTP client that trusts only the server's self-signed certificate.
    static func makeHTTPClient(trusting certificate: String) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(certificate)
        return HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
    }
}

/// Sends `Authorization: Bearer <token>`.
struct BearerToken: ClientMiddleware {
    let token: String?

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        if let token { request.headerFields[.authorization] = "Bearer \(token)" }
        return try await next(request, body, baseURL)
    }
}

/// Records each response (status, content type, body) for the spec check, as the curl helper
/// does.
struct ExchangeRecorder: ClientMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        let bytes: [UInt8]
        if let responseBody { bytes = try await [UInt8](collecting: responseBody, upTo: 16 << 20) } else { bytes = [] }
        var headers = ""
        for field in response.headerFields { headers += "\(field.name.rawName): \(field.value)\r\n" }
        Exchanges.record(
            method: request.method.rawValue, path: request.path ?? "/",
            reply: LiveServer.Reply(status: response.status.code, headers: headers, data: Data(bytes)))
        return (response, responseBody == nil ? nil : HTTPBody(bytes))
    }
}
