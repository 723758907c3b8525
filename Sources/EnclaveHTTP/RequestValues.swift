import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import OpenAPIRuntime

/// What the generated handlers cannot see themselves: the bearer token, where the request came
/// from, its id, and (for signed ingest) the raw bytes the signature covers.
struct RequestValues: Sendable {
    var token: SessionToken?
    var context = Enclave.RequestContext()
    var rawBody: [UInt8]?

    @TaskLocal static var current = RequestValues()
}

/// Sets `RequestValues`, buffers signed ingest bodies up to their limit, turns every error into
/// problem+json (never a stack, SQL or PHI), and adds security headers: HSTS and nosniff
/// everywhere, no-store under /v1 (responses there may carry PHI).
struct RequestValuesMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext
    /// The most bytes a signed JSON ingest body may have.
    static let ingestLimit = 1 << 20
    /// The most bytes any other body may have.
    static let bodyLimit = 64 * 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var values = RequestValues()
        if let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") {
            values.token = SessionToken(String(authorization.dropFirst(7)))
        }
        values.context.requestID =
            request.headers[.requestID].map { String($0.prefix(100)) } ?? UUID().uuidString.lowercased()
        values.context.client = ClientInfo(
            address: context.remoteAddress?.ipAddress,
            userAgent: request.headers[.userAgent].map { String($0.prefix(300)) })
        var request = request
        var response: Response
        do {
            if request.method == .post || request.method == .put {
                let limit = request.uri.path.hasPrefix("/v1/ingest/") ? Self.ingestLimit : Self.bodyLimit
                var collected: [UInt8] = []
                for try await piece in request.body {
                    collected += piece.readableBytesView
                    guard collected.count <= limit else {
                        throw Problem(
                            .contentTooLarge, "the body is larger than \(limit / 1024) KiB", type: "body-too-large")
                    }
                }
                values.rawBody = collected
                request.body = RequestBody(buffer: ByteBuffer(bytes: collected))
            }
            response = try await RequestValues.$current.withValue(values) { try await next(request, context) }
        } catch {
            response = Self.problem(for: error).response(requestID: values.context.requestID)
        }
        response.headers[.strictTransportSecurity] = "max-age=63072000; includeSubDomains"
        response.headers[.contentTypeOptions] = "nosniff"
        if request.uri.path.hasPrefix("/v1/") { response.headers[.cacheControl] = "no-store" }
        response.headers[.requestID] = values.context.requestID
        return response
    }

    /// Errors from the router and the generated glue: unknown routes, bodies that do not decode,
    /// wrong content types. Decoding errors never echo the input.
    static func problem(for error: any Error) -> Problem {
        if let problem = error as? Problem { return problem }
        if let http = error as? HTTPError { return Problem(http.status, http.status.reasonPhrase) }
        if let server = error as? ServerError {
            let underlying = server.underlyingError
            if underlying is AccessError || underlying is Problem { return Problem(underlying) }
            if underlying is DecodingError {
                return Problem(
                    .badRequest, "the body does not match the schema (unknown, missing or mistyped fields)",
                    type: "invalid-body")
            }
            let text = String(describing: underlying).lowercased()
            if text.contains("content type") || text.contains("content-type") {
                return Problem(.unsupportedMediaType, "unsupported content type", type: "unsupported-media-type")
            }
            return Problem(.badRequest, "the request is not valid for this operation", type: "invalid-request")
        }
        return Problem(error)
    }
}
