import Hummingbird
import Logging

/// One log line per request: the route pattern, never the path (ids) or the query; a failure by
/// its safe description only (no PHI, no SQL).
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext
    let logger = Logger(label: "enclave.http")

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let started = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let values = RequestValues.current
        var metadata: Logger.Metadata = [
            "request_id": "\(values.context.requestID ?? "")", "method": "\(request.method.rawValue)",
            "route": "\(context.endpointPath ?? "unmatched")", "status": "\(response.status.code)",
            "ms": "\(Int(milliseconds.rounded()))",
        ]
        if response.status.code >= 500 {
            metadata["error"] = "\(values.outcome.failure ?? "none")"
            logger.error("request failed", metadata: metadata)
        } else {
            logger.info("request", metadata: metadata)
        }
        return response
    }
}
