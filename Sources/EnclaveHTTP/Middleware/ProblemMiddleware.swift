import Enclave
import HTTPTypes
import Hummingbird
import OpenAPIRuntime

/// Turns every error into `application/problem+json` (never a stack, SQL or PHI), and a known
/// path asked with another method into 405 with `Allow`. The one place a refusal becomes a
/// response; what failed is noted for the access log by its safe description only.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let values = RequestValues.current
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            // The router found no route: a known path with another method gets 405 and Allow.
            let allowed = routes.methods(for: request.uri.path)
            guard !allowed.isEmpty else {
                return Self.problem(for: error).response(requestID: values.context.requestID)
            }
            var response = Problem(
                .methodNotAllowed, "this path does not support \(request.method.rawValue)", type: "method-not-allowed"
            ).response(requestID: values.context.requestID)
            response.headers[.allow] = allowed.joined(separator: ", ")
            return response
        } catch {
            values.outcome.failure = Self.safeDescription(error)
            return Self.problem(for: error).response(requestID: values.context.requestID)
        }
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
