/// A migration problem, with the file and line at fault where there is one.
///
/// The description is for the operator running the migration: it names the file, the line,
/// the SQLSTATE and the server's message (migration files hold schema, never PHI).
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    /// What kind of problem.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A file in the migrations directory is misnamed or unreadable.
        public static let badFile = Code("badFile")
        /// An applied file's content changed since it was applied.
        public static let checksumMismatch = Code("checksumMismatch")
        /// A migration recorded as applied has no file any more.
        public static let missingFile = Code("missingFile")
        /// A pending file sorts before one that is already applied.
        public static let outOfOrder = Code("outOfOrder")
        /// A statement of a migration failed; the migration was rolled back.
        public static let statementFailed = Code("statementFailed")
        /// Another runner held the migration lock for longer than the wait allows.
        public static let lockWaitExpired = Code("lockWaitExpired")
        /// An option has a value that cannot be used.
        public static let invalidOption = Code("invalidOption")
        /// A function in the database differs from its file in `functions/` (changed by hand).
        public static let functionChanged = Code("functionChanged")
        /// A function its file in `functions/` defines is missing from the database.
        public static let functionMissing = Code("functionMissing")
        /// A function in the application schemas that no file in `functions/` defines.
        public static let functionUndeclared = Code("functionUndeclared")
        /// Refuses a `--lock-timeout` or `--statement-timeout` value PostgreSQL would not read as a
        /// duration, before anything runs (the values are set with `set_config`, never spliced).
        static func checkTimeouts(lockTimeout: String, statementTimeout: String) throws {
            for (name, value) in [("--lock-timeout", lockTimeout), ("--statement-timeout", statementTimeout)] {
                guard value.wholeMatch(of: /[0-9]+(ms|s|min|h)?/) != nil else {
                    throw MigrationError(
                        code: .invalidOption,
                        message: "\(name) \(value) is not a duration such as 500ms, 5s, 10min or 1h")
                }
            }
        }

        public var description: String { name }
    }

    public let code: Code
    /// The migration file involved, relative to its directory.
    public let file: String?
    /// The 1-based line in `file`.
    public let line: Int?
    /// The server's SQLSTATE, for a failed statement.
    public let sqlState: String?
    public let message: String

    public init(code: Code, file: String? = nil, line: Int? = nil, sqlState: String? = nil, message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.sqlState = sqlState
        self.message = message
    }

    /// Refuses a `--lock-timeout` or `--statement-timeout` value PostgreSQL would not read as a
    /// duration, before anything runs (the values are set with `set_config`, never spliced).
    static func checkTimeouts(lockTimeout: String, statementTimeout: String) throws {
        for (name, value) in [("--lock-timeout", lockTimeout), ("--statement-timeout", statementTimeout)] {
            guard value.wholeMatch(of: /[0-9]+(ms|s|min|h)?/) != nil else {
                throw MigrationError(
                    code: .invalidOption, message: "\(name) \(value) is not a duration such as 500ms, 5s, 10min or 1h")
            }
        }
    }

    public var description: String {
        var location = file ?? ""
        if let line { location += ":\(line)" }
        var text = location.isEmpty ? "" : location + ": "
        if let sqlState { text += "SQLSTATE \(sqlState): " }
        return text + message
    }
}
