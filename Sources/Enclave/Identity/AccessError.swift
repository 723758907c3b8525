import Foundation
import Postgres

/// Why a request for access was refused, in words safe to show the person who made it.
public struct AccessError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable code; the HTTP layer maps each to a status.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// No valid session: missing, unknown, expired, revoked or the user is disabled.
        public static let unauthenticated = Code("unauthenticated")
        /// Email or password (or code) wrong; never says which, nor whether the email exists.
        public static let invalidCredentials = Code("invalidCredentials")
        /// Too many failed attempts; `retryAfter` says when to try again.
        public static let throttled = Code("throttled")
        /// The session must complete TOTP verification first.
        public static let mfaRequired = Code("mfaRequired")
        /// The action needs a re-authentication in the last five minutes.
        public static let reauthenticationRequired = Code("reauthenticationRequired")
        /// Authenticated, but not allowed.
        public static let forbidden = Code("forbidden")
        /// The input is not acceptable; nothing changed.
        public static let invalidInput = Code("invalidInput")
        /// No such thing, or not visible to the caller.
        public static let notFound = Code("notFound")
        /// The thing is not in a state that allows this.
        public static let conflict = Code("conflict")
        public var description: String { name }
    }

    public let code: Code
    public let message: String
    public var retryAfter: Date?

    public init(_ code: Code, _ message: String, retryAfter: Date? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { message }

    /// The same refusal: the same code and the same words (`retryAfter` is a time, not the refusal).
    public static func == (lhs: AccessError, rhs: AccessError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    /// Maps the SQLSTATEs raised by the identity functions; other errors pass through.
    static func mapping(_ error: any Error) -> any Error {
        guard let error = error as? PostgresError, error.code == .server else { return error }
        // The functions of sql/functions/ raise stable codes; the words are DatabaseRefusal's.
        if let refusal = DatabaseRefusal(rawValue: error.message) {
            return refusal.accessError(detail: error.detail)
        }
        switch error.sqlState {
        case "28000": return AccessError(.unauthenticated, "sign in again: the session is not valid")
        case "28P01": return AccessError(.reauthenticationRequired, "confirm your password to continue")
        case "42501": return AccessError(.forbidden, "you may not do that")
        case "55000": return AccessError(.conflict, "that is no longer possible")
        case "23503": return AccessError(.invalidInput, "the request refers to something that does not exist")
        case "23505": return AccessError(.conflict, "that already exists")
        case "23514", "22023", "22P02", "22007", "22008":
            return AccessError(.invalidInput, "the request has an invalid value")
        default: return error
        }
    }
}

/// Runs `body`, turning database refusals from the identity functions into `AccessError`s.
func mappingAccessErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw AccessError.mapping(error)
    }
}
