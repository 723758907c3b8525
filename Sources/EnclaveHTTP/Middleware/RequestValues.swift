import Enclave
import Synchronization

/// What the generated handlers cannot see themselves: the bearer token, where the request came
/// from, its id, and (for signed ingest) the raw bytes the signature covers. Set for each request
/// by `RequestContextMiddleware` (the body by `BodyLimitMiddleware`).
struct RequestValues: Sendable {
    var token: SessionToken?
    var context = Enclave.RequestContext()
    var rawBody: [UInt8]?
    var contentType: String?
    /// The request's path and query as received, and its Host (a provider signs the URL it called).
    var target = ""
    var host: String?
    /// What the handler and the middleware learn on the way out: headers the generated code cannot
    /// set (a recording's real content type), and what failed.
    var outcome = RequestOutcome()

    @TaskLocal static var current = RequestValues()
}

/// What a request's handler and middleware tell the middleware outside them: response headers
/// the generated code cannot set, and the safe description of an error that became a problem.
final class RequestOutcome: Sendable {
    private let headerState = Mutex<[(String, String)]>([])
    private let failureState = Mutex<String?>(nil)

    func set(header name: String, _ value: String) {
        headerState.withLock { $0.append((name, value)) }
    }

    var headers: [(String, String)] { headerState.withLock { $0 } }

    /// The failure behind the response, as it may be logged (see `logSafeDescription(of:)`).
    var failure: String? {
        get { failureState.withLock { $0 } }
        set { failureState.withLock { $0 = newValue } }
    }
}
