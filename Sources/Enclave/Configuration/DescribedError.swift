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

extension PostgresError: DescribedError {
    /// The kind of failure and the SQLSTATE, never the server's message.
    public var logDescription: String { description }
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
