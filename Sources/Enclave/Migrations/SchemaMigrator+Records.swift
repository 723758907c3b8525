import Foundation

extension SchemaMigrator {
    /// Timeouts for the migration session.
    public struct Options: Sendable {
        /// PostgreSQL `lock_timeout` for every statement, such as `5s`.
        public var lockTimeout: String
        /// PostgreSQL `statement_timeout` for every statement, such as `10min`; `0` disables it.
        public var statementTimeout: String
        /// How long to wait for another runner to finish before giving up.
        public var lockWait: Duration

        public init(lockTimeout: String = "5s", statementTimeout: String = "10min", lockWait: Duration = .seconds(600))
        {
            self.lockTimeout = lockTimeout
            self.statementTimeout = statementTimeout
            self.lockWait = lockWait
        }
    }

    /// A row of `enclave_meta.schema_migrations`.
    public struct AppliedMigration: Sendable, Equatable {
        public let version: Int
        public let name: String
        public let checksum: String
        public let appliedAt: Date
        public let appliedBy: String
        public let durationMilliseconds: Int
    }

    /// A row of `enclave_meta.function_migrations`: one application of a function file.
    public struct AppliedFunctionFile: Sendable, Equatable {
        /// The file's name, such as `functions/gate.sql`.
        public let name: String
        public let checksum: String
        public let appliedAt: Date
        public let appliedBy: String
        public let durationMilliseconds: Int
    }

    /// A numbered migration's state, for `status`.
    public enum State: String, Sendable {
        case applied
        case pending
        /// Applied, but the file's content changed since.
        case changed
        /// Applied as an earlier text that `rewritten` lists: `up` records the new checksum.
        case rewritten
        /// Applied, but the file is gone.
        case missingFile = "missing file"
    }

    /// A function file's state, for `status`.
    public enum FunctionState: String, Sendable {
        /// The database has the file's current content.
        case applied
        /// Never applied.
        case pending
        /// Changed since it was last applied: `up` applies it again.
        case changed
        /// Applied once, but no longer listed; its functions stay until a migration drops them.
        case unlisted
    }

    /// One numbered migration of `status`.
    public struct Entry: Sendable {
        public let version: Int
        public let name: String
        public let state: State
        /// The checksum of the file on disk, if it exists.
        public let fileChecksum: String?
        /// The applied record, if any.
        public let applied: AppliedMigration?
    }

    /// One function file of `status`.
    public struct FunctionEntry: Sendable {
        public let name: String
        public let state: FunctionState
        /// The checksum of the file on disk, if it is listed.
        public let fileChecksum: String?
        /// The latest application, if any.
        public let applied: AppliedFunctionFile?
    }

    /// What `status` reports.
    public struct Status: Sendable {
        public let migrations: [Entry]
        public let functions: [FunctionEntry]
    }

    /// What `up` would apply, or applied.
    public struct Plan: Sendable {
        /// Numbered files, in order.
        public let migrations: [MigrationFile]
        /// Function files whose checksum changed, in the manifest's order.
        public let functions: [FunctionFile]
        /// True when there is nothing to apply.
        public var isEmpty: Bool { migrations.isEmpty && functions.isEmpty }
    }

    /// What one `up` applied.
    public struct Outcome: Sendable {
        public let migrations: [AppliedMigration]
        public let functions: [AppliedFunctionFile]
        /// True when nothing was applied.
        public var isEmpty: Bool { migrations.isEmpty && functions.isEmpty }
    }
}
