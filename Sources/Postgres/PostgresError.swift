import Foundation

/// An error from PostgreSQL or from this module's use of libpq.
///
/// `description` is safe to show anyone: it names the kind of failure, the SQLSTATE and the
/// constraint, never the server's message (which can quote input values) or a password.
/// `debugDescription` adds the server's message, detail, hint and position for operators' logs.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, as a stable, extensible code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The server reported an error; `sqlState` says which.
        public static let server = Code("server")
        /// The connection string or URL could not be parsed.
        public static let invalidConnectionString = Code("invalidConnectionString")
        /// The connection would not be protected as policy requires (see `ConnectionConfiguration`).
        public static let insecureConnection = Code("insecureConnection")
        /// The server could not be reached or refused the login.
        public static let connectionFailed = Code("connectionFailed")
        /// The connection broke (backend terminated, server restarted); it is discarded.
        public static let connectionLost = Code("connectionLost")
        /// The statement ran longer than its timeout and was cancelled on the server.
        public static let statementTimeout = Code("statementTimeout")
        /// No pooled connection became free within the checkout timeout.
        public static let poolTimeout = Code("poolTimeout")
        /// The pool was closed.
        public static let poolClosed = Code("poolClosed")
        /// A column's type or nullness does not match the Swift type it was decoded as.
        public static let typeMismatch = Code("typeMismatch")
        /// A column name that the result does not have.
        public static let columnNotFound = Code("columnNotFound")
        /// A value could not be encoded for PostgreSQL.
        public static let encodingFailed = Code("encodingFailed")
        /// libpq answered in a way this module does not expect.
        public static let protocolViolation = Code("protocolViolation")

        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// The SQLSTATE code from the server, such as `23505`.
    public var sqlState: String?
    /// The server's primary message, or this module's explanation. May quote input values.
    public var message: String
    /// The server's detail field. May quote input values.
    public var detail: String?
    /// The server's hint field.
    public var hint: String?
    /// The constraint that was violated, when the server names one.
    public var constraint: String?
    /// The table involved, when the server names one.
    public var table: String?
    /// The column involved (from the server, or the result column being decoded).
    public var column: String?
    /// 1-based character offset into the statement where the server located the error.
    public var position: Int?

    public init(
        code: Code,
        message: String,
        sqlState: String? = nil,
        detail: String? = nil,
        hint: String? = nil,
        constraint: String? = nil,
        table: String? = nil,
        column: String? = nil,
        position: Int? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.table = table
        self.column = column
        self.position = position
    }

    /// True when the server cancelled the statement (SQLSTATE 57014), for a timeout or a cancel request.
    public var isQueryCanceled: Bool { sqlState == "57014" }

    /// True when the server refused a write because it is read-only (SQLSTATE 25006): a standby,
    /// or a former primary being demoted in a failover.
    public var isReadOnlyServer: Bool { sqlState == "25006" }

    public var description: String {
        switch code {
        case .server:
            var text = "PostgreSQL error \(sqlState ?? "?????")"
            if let constraint { text += " on constraint \(constraint)" }
            return text
        case .typeMismatch, .columnNotFound:
            // Column names and type names are schema, not data: safe to show.
            return message
        case .invalidConnectionString, .insecureConnection, .connectionFailed:
            // These messages are built or scrubbed here and never carry a password.
            return oneLine(message)
        default:
            return "PostgreSQL \(code): \(oneLine(message))"
        }
    }

    /// libpq's messages span lines ("server closed the connection unexpectedly\n\tThis probably
    /// means…"): one line, for logs.
    private func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }

    public var debugDescription: String {
        var parts = ["PostgresError(\(code)"]
        if let sqlState { parts.append("sqlState: \(sqlState)") }
        parts.append("message: \(message)")
        if let detail { parts.append("detail: \(detail)") }
        if let hint { parts.append("hint: \(hint)") }
        if let constraint { parts.append("constraint: \(constraint)") }
        if let table { parts.append("table: \(table)") }
        if let column { parts.append("column: \(column)") }
        if let position { parts.append("position: \(position)") }
        return parts.joined(separator: ", ") + ")"
    }
}
