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
    @discardableResult
    ///
    /// A refusal is recorded as `access.denied` in the practice's audit chain, in a transaction
    /// of its own (the refused one rolls back).
    ///
    /// - Throws: `.unauthenticated` without a valid session, `.mfaRequired` before TOTP,
    ///   `.forbidden` when the caller may not reach the practice for `scope`.
    public func withPractice<T: Sendable>(
        _ token: SessionToken,
        practice: UUID,
        scope: Scope,
        context: RequestContext = RequestContext(),
        _ body: (Transaction) async throws -> T
    ) async throws -> T {
        try await recordingRefusals(token, practice: practice, scope: scope, context: context) {
            try await pool.withTransaction { transaction in
                try await transaction.bind(token, tenant: practice)
                // One round trip: the session is touched, then the gate asked, per request.
                let session = try await transaction.query(
                    """
                    select t.mfa_verified, enclave_private.reachable_tenant($1) as tenant
                    from enclave_private.touch_session() t
                    """,
                    [scope.rawValue])
                guard let row = session.first else {
                    throw AccessError(.unauthenticated, "sign in again: the session is not valid")
                }
                guard try row.decode(UUID?.self, "tenant") == practice else {
                    if try !row.decode(Bool.self, "mfa_verified") {
                        throw AccessError(.mfaRequired, "verify a one-time code before opening practice data")
                    }
                    throw AccessError(.forbidden, "you do not have access to this practice's data")
                }
                return try await body(transaction)
            }
        }
    }

    /// Runs `body`, a unit of work that binds `token` and checks the reach itself (one call of
    /// a function of `sql/functions/reads.sql`), turning the database's refusals into
    /// `AccessError`s and recording them as `withPractice` does.
    public func recordingRefusals<T: Sendable>(
        _ token: SessionToken,
        practice: UUID,
        scope: Scope,
        context: RequestContext = RequestContext(),
        _ body: () async throws -> T
    ) async throws -> T {
        do {
            return try await mappingAccessErrors(body)
        } catch let error as AccessError where [.forbidden, .mfaRequired, .unauthenticated].contains(error.code) {
            await recordDenial(token, practice: practice, scope: scope, reason: error.code, context: context)
            throw error
        }
    }

    /// Records a refused attempt, and marks a timed-out session as ended. The caller is refused
    /// whether or not this write succeeds.
    private func recordDenial(
        _ token: SessionToken,
        practice: UUID,
        scope: Scope,
        reason: AccessError.Code,
        context: RequestContext
    ) async {
        _ = try? await pool.withTransaction { transaction in
            try await transaction.bind(token, tenant: practice)
            if reason == .unauthenticated { try await transaction.query("select enclave_private.note_session_end()") }
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .accessDenied, objectType: "practice",
                    objectID: practice.uuidString.lowercased(), outcome: .denied, reason: reason.description,
                    details: ["scope": .string(scope.rawValue)]),
                context: context)
        }
    }
}
