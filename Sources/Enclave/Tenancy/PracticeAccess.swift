import Foundation
import Postgres

/// Units of work on one practice's data, as the service role, for a signed-in caller.
///
/// Each transaction binds the caller's token and the practice first; the service then asks the
/// database gate whether the caller may reach the practice for the scope, to give a clear
/// refusal. Every statement after that is confined by row-level security through the same
/// gate, which is the check that cannot be bypassed.
public struct PracticeAccess: Sendable {
    public let pool: ConnectionPool

    public init(pool: ConnectionPool) {
        self.pool = pool
    }

    /// Runs `body` in a transaction that can reach `practice` for `scope`.
    ///
    /// - Throws: `.unauthenticated` without a valid session, `.mfaRequired` before TOTP,
    ///   `.forbidden` when the caller may not reach the practice for `scope`.
    public func withPractice<T: Sendable>(
        _ token: SessionToken,
        practice: UUID,
        scope: Scope,
        _ body: (Transaction) async throws -> T
    ) async throws -> T {
        try await mappingAccessErrors {
            try await pool.withTransaction { transaction in
                try await transaction.bind(token, tenant: practice)
                let session = try await transaction.query("select mfa_verified from enclave_private.touch_session()")
                guard let row = session.first else {
                    throw AccessError(.unauthenticated, "sign in again: the session is not valid")
                }
                let gate = try await transaction.query(
                    "select enclave_private.reachable_tenant($1) as tenant", [scope.rawValue])
                guard try gate.first?.decode(UUID?.self, "tenant") == practice else {
                    if try !row.decode(Bool.self, "mfa_verified") {
                        throw AccessError(.mfaRequired, "verify a one-time code before opening practice data")
                    }
                    throw AccessError(.forbidden, "you do not have access to this practice's data")
                }
                return try await body(transaction)
            }
        }
    }
}
