import Hummingbird

/// Counts each request and times it, by route pattern, method and status (`/metrics`).
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext
    let metrics: Metrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let started = ContinuousClock.now
        let response = try await next(request, context)
        metrics.observe(
            operation: context.endpointPath ?? "unmatched", method: request.method.rawValue,
            status: Int(response.status.code), duration: ContinuousClock.now - started)
        return response
    }
}
