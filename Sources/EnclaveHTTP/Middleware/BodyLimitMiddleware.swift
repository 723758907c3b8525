import Hummingbird
import NIOCore

/// Reads a request's body up to its limit (1 MiB for ingest, 64 KiB for anything else) and
/// keeps the raw bytes in `RequestValues` (a signature covers them); past the limit, 413. A
/// recording upload is not read here: it streams into the service.
struct BodyLimitMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext
    /// The most bytes a signed JSON ingest body may have.
    static let ingestLimit = 1 << 20
    /// The most bytes any other body may have.
    static let bodyLimit = 64 * 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let streamed = request.method == .put && request.uri.path.hasPrefix("/v1/ingest/calls/")
        guard request.method == .post || request.method == .put, !streamed else {
            return try await next(request, context)
        }
        let limit = request.uri.path.hasPrefix("/v1/ingest/") ? Self.ingestLimit : Self.bodyLimit
        var collected: [UInt8] = []
        for try await piece in request.body {
            collected += piece.readableBytesView
            guard collected.count <= limit else {
                throw Problem(.contentTooLarge, "the body is larger than \(limit / 1024) KiB", type: "body-too-large")
            }
        }
        var request = request
        request.body = RequestBody(buffer: ByteBuffer(bytes: collected))
        var values = RequestValues.current
        values.rawBody = collected
        return try await RequestValues.$current.withValue(values) { try await next(request, context) }
    }
}
