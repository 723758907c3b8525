import Enclave
import EnclaveConsole
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import OpenAPIRuntime
import Synchronization

/// What the generated handlers cannot see themselves: the bearer token, where the request came
/// from, its id, and (for signed ingest) the raw bytes the signature covers.
struct RequestValues: Sendable {
    var token: SessionToken?
    var context = Enclave.RequestContext()
    var rawBody: [UInt8]?
    var contentType: String?
    /// The request's path and query as received, and its Host (a provider signs the URL it called).
    var target = ""
    var host: String?
    /// Headers a handler sets that the generated code cannot (a recording's real content type).
    var response = ResponseOverrides()

    @TaskLocal static var current = RequestValues()
}

/// Sets `RequestValues`, buffers signed ingest bodies up to their limit, turns every error into
/// problem+json (never a stack, SQL or PHI), and adds security headers: HSTS and nosniff
/// everywhere, no-store under /v1 (responses there may carry PHI).
struct RequestValuesMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext
    let metrics: Metrics
    let routes: RouteTable
    let logger = Logger(label: "enclave.http")
    /// The most bytes a signed JSON ingest body may have.
    static let ingestLimit = 1 << 20
    /// The most bytes any other body may have.
    static let bodyLimit = 64 * 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let started = ContinuousClock.now
        var values = RequestValues()
        values.contentType = request.headers[.contentType].map { String($0.prefix(100)) }
        values.target = request.uri.string
        values.host = request.head.authority.map { String($0.prefix(300)) }
        if let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") {
            values.token = SessionToken(String(authorization.dropFirst(7)))
        } else if request.method == .get, Self.isRecording(request.uri.path),
            let cookie = request.cookies[Console.sessionCookieName], !cookie.value.isEmpty
        {
            // The console's audio player cannot send a header: a recording's GET (never a
            // write) also takes the console's SameSite=Strict session cookie.
            values.token = SessionToken(cookie.value)
        }
        values.context.requestID =
            request.headers[.requestID].map { String($0.prefix(100)) } ?? UUID().uuidString.lowercased()
        values.context.client = ClientInfo(
            address: context.remoteAddress?.ipAddress,
            userAgent: request.headers[.userAgent].map { String($0.prefix(300)) })
        var request = request
        var response: Response
        var failure: (any Error)?
        do {
            // A recording upload streams into the service; every other body is read here, up to its limit.
            let streamed = request.method == .put && request.uri.path.hasPrefix("/v1/ingest/calls/")
            if request.method == .post || request.method == .put, !streamed {
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
        } catch let error as HTTPError where error.status == .notFound {
            failure = error
            // The router found no route: a known path with another method gets 405 and Allow.
            let allowed = routes.methods(for: request.uri.path)
            if allowed.isEmpty {
                response = Self.problem(for: error).response(requestID: values.context.requestID)
            } else {
                response = Problem(
                    .methodNotAllowed, "this path does not support \(request.method.rawValue)",
                    type: "method-not-allowed"
                ).response(requestID: values.context.requestID)
                response.headers[.allow] = allowed.joined(separator: ", ")
            }
        } catch {
            failure = error
            response = Self.problem(for: error).response(requestID: values.context.requestID)
        }
        for (name, value) in values.response.headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        if response.status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"enclave\"" }
        if response.status == .serviceUnavailable, response.headers[.retryAfter] == nil {
            response.headers[.retryAfter] = "5"
        }
        response.headers[.strictTransportSecurity] = "max-age=63072000; includeSubDomains"
        response.headers[.contentTypeOptions] = "nosniff"
        // Under /v1 nothing is cached, unless a handler said otherwise (the snippet's script).
        if request.uri.path.hasPrefix("/v1/"), response.headers[.cacheControl] == nil {
            response.headers[.cacheControl] = "no-store"
        }
        response.headers[.requestID] = values.context.requestID
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let operation = context.endpointPath ?? "unmatched"
        metrics.observe(
            operation: operation, method: request.method.rawValue, status: Int(response.status.code), duration: elapsed)
        // The access log names the route pattern, never the path (ids) or the query; a failure
        // is logged by its safe description only.
        var metadata: Logger.Metadata = [
            "request_id": "\(values.context.requestID ?? "")", "method": "\(request.method.rawValue)",
            "route": "\(operation)", "status": "\(response.status.code)",
            "ms": "\(Int((seconds * 1000).rounded()))",
        ]
        if response.status.code >= 500 {
            metadata["error"] = "\(failure.map(Self.safeDescription) ?? "none")"
            logger.error("request failed", metadata: metadata)
        } else {
            logger.info("request", metadata: metadata)
        }
        return response
    }

    /// `/v1/practices/{id}/leads/{id}/recording`.
    static func isRecording(_ path: String) -> Bool {
        let parts = path.split(separator: "/")
        return parts.count == 6 && parts[0] == "v1" && parts[1] == "practices" && parts[3] == "leads"
            && parts[5] == "recording"
    }

    /// What may be logged about an unexpected error (see `DescribedError`).
    static func safeDescription(_ error: any Error) -> String {
        logSafeDescription(of: (error as? ServerError)?.underlyingError ?? error)
    }

    /// Errors from the router and the generated glue: unknown routes, bodies that do not decode,
    /// wrong content types. Decoding errors never echo the input.
    static func problem(for error: any Error) -> Problem {
        if let problem = error as? Problem { return problem }
        if let http = error as? HTTPError { return Problem(http.status, http.status.reasonPhrase) }
        if let server = error as? ServerError {
            let underlying = server.underlyingError
            if underlying is AccessError || underlying is Problem { return Problem(underlying) }
            // A database out of reach is 503, not the request's fault.
            if (underlying as? any DescribedError)?.problem != nil { return Problem(underlying) }
            if let decoding = underlying as? DecodingError {
                return Problem(
                    .badRequest, "the body does not match the schema (unknown, missing or mistyped fields)",
                    type: "invalid-body", detail: Problem.describe(decoding))
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

/// Response headers set by a handler, applied by the middleware.
final class ResponseOverrides: Sendable {
    private let state = Mutex<[(String, String)]>([])

    func set(header name: String, _ value: String) {
        state.withLock { $0.append((name, value)) }
    }

    var headers: [(String, String)] { state.withLock { $0 } }
}
