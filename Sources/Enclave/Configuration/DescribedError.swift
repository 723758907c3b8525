import Postgres
import Sealing

/// What a client may be told about a failure: an RFC 9457 problem's status, stable type and
/// title, and which part of the request is at fault. Safe to show anyone.
public struct ProblemDescription: Sendable, Equatable {
    /// The HTTP status.
    public var status: Int
    /// A stable slug, such as `forbidden`; the API prefixes it to make the problem's type URI.
    public var type: String
    /// A sentence for people.
    public var title: String
    /// A field or parameter at fault, never its value.
    public var detail: String?

    public init(status: Int, type: String, title: String, detail: String? = nil) {
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
    }
}

/// An error that describes itself, as Hummingbird's `HTTPResponseError` does: what a client may
/// see of it, and what a log line may say. Neither may carry PHI, key material, input values or
/// the database server's own text (which can quote data).
public protocol DescribedError: Error {
    /// The problem to answer a client with; nil for a failure no client should see the cause
    /// of (answered as a bare 500).
    var problem: ProblemDescription? { get }
    /// A description for the log: codes and SQLSTATEs, never values.
    var logDescription: String { get }
}

extension DescribedError {
    public var problem: ProblemDescription? { nil }
}

/// What a log line may say about `error`: its own log description, or else only the name of its
/// type, since its text could quote input, PHI or key material.
public func logSafeDescription(of error: any Error) -> String {
    (error as? any DescribedError)?.logDescription ?? String(reflecting: type(of: error))
}

/// Whether `error` is the database being out of reach (down, restarting, no free connection in
/// time) rather than a fault of the request: callers say so plainly and retry later.
public func isDatabaseUnreachable(_ error: any Error) -> Bool {
    (error as? PostgresError)?.isUnavailable ?? false
}

extension PostgresError: DescribedError {
    /// The kind of failure and the SQLSTATE, never the server's message.
    public var logDescription: String { description }

    /// A database that cannot be reached (down, restarting, refusing connections) or a pool with
    /// no free connection in time: 503, so that clients and providers retry. Anything else is
    /// not the client's to know (500).
    public var problem: ProblemDescription? {
        guard isUnavailable else { return nil }
        return ProblemDescription(
            status: 503, type: "service-unavailable",
            title: "the service cannot reach its database right now; nothing was done, try again shortly")
    }

    /// Whether the failure is the database being out of reach rather than the request's fault:
    /// no connection, a lost one, a pool timeout, the server shutting down or starting up
    /// (SQLSTATE class 08, 57P01 to 57P03), or a server that became a standby in a failover
    /// (25006, read-only: the connection is discarded and the retry reaches the new primary).
    public var isUnavailable: Bool {
        if [.connectionFailed, .connectionLost, .poolTimeout].contains(code) { return true }
        guard code == .server, let state = sqlState else { return false }
        return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "25006"].contains(state)
    }
}

extension SealingError: DescribedError {
    public var logDescription: String { "sealing: \(code)" }
}

extension ConfigurationError: DescribedError {
    public var logDescription: String { "configuration: \(description)" }
}

extension MigrationError: DescribedError {
    public var logDescription: String { "migration: \(code)" }
}
