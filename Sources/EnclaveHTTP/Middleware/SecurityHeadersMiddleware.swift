import HTTPTypes
import Hummingbird

/// The headers every answer carries: HSTS and nosniff everywhere, no-store under /v1 (responses
/// there may carry PHI) unless a handler said otherwise, the headers a handler set that the
/// generated code cannot, `WWW-Authenticate` on 401 and `Retry-After` on 503.
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var response = try await next(request, context)
        for (name, value) in RequestValues.current.outcome.headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        if response.status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"enclave\"" }
        if response.status == .serviceUnavailable, response.headers[.retryAfter] == nil {
            response.headers[.retryAfter] = "5"
        }
        response.headers[.strictTransportSecurity] = "max-age=63072000; includeSubDomains"
        response.headers[.contentTypeOptions] = "nosniff"
        if request.uri.path.hasPrefix("/v1/"), response.headers[.cacheControl] == nil {
            response.headers[.cacheControl] = "no-store"
        }
        return response
    }
}
