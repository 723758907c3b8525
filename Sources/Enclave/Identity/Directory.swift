import Foundation
import Postgres
import Sealing

/// Operators' management of agencies, users and memberships, as `enclave_maint`.
public struct Directory: Sendable {
    /// A membership role.
    public enum Role: String, Sendable, CaseIterable {
        case agencyAdmin = "agency_admin"
        case agencyMember = "agency_member"
        case practiceOwner = "practice_owner"
        case practiceStaff = "practice_staff"

        var isAgencyRole: Bool { self == .agencyAdmin || self == .agencyMember }
    }

    public let pool: ConnectionPool
    public let passwordCost: PasswordHasher.Cost

    public init(pool: ConnectionPool, passwordCost: PasswordHasher.Cost = .owasp) {
        self.pool = pool
        self.passwordCost = passwordCost
    }

    /// Creates an agency.
    public func createAgency(name: String) async throws -> UUID {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(trimmed.count) else {
            throw AccessError(.invalidInput, "an agency name has 1 to 200 characters")
        }
        let id = UUID()
        try await pool.withTransaction { transaction in
            try await transaction.query("insert into enclave.agencies (id, name) values ($1, $2)", [id, trimmed])
            try await transaction.audit(
                AuditEvent(
                    tenant: AuditEvent.platform, action: .agencyCreated, objectType: "agency",
                    objectID: id.uuidString.lowercased()))
        }
        return id
    }

    /// Creates a user with a password.
    public func createUser(email: String, displayName: String, password: String) async throws -> UUID {
        let email = try Self.checkEmail(email)
        let name = displayName.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(name.count) else {
            throw AccessError(.invalidInput, "a display name has 1 to 200 characters")
        }
        try Self.checkPassword(password)
        let parameters = try PasswordHasher(cost: passwordCost).newParameters()
        let key = try PasswordHasher.deriveKey(password, parameters: parameters)
        let id = UUID()
        do {
            try await pool.withTransaction { transaction in
                try await transaction.query(
                    """
                    insert into enclave.users (id, email, display_name, password_phc, password_verifier)
                    values ($1, $2, $3, $4, $5)
                    """,
                    [id, email, name, parameters, PasswordHasher.storedKey(for: key)]
                )
                try await transaction.audit(
                    AuditEvent(
                        tenant: AuditEvent.platform, action: .userCreated, objectType: "user",
                        objectID: id.uuidString.lowercased()))
            }
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw AccessError(.conflict, "a user with that email already exists")
        }
        return id
    }

    /// Gives `user` `role` in an agency or a practice.
    public func grant(user: UUID, role: Role, agency: UUID? = nil, practice: UUID? = nil) async throws {
        guard role.isAgencyRole ? (agency != nil && practice == nil) : (practice != nil && agency == nil) else {
            throw AccessError(
                .invalidInput, "\(role.rawValue) needs \(role.isAgencyRole ? "an agency" : "a practice"), and only that"
            )
        }
        do {
            try await pool.query(
                "insert into enclave.memberships (user_id, practice_id, agency_id, role) values ($1, $2, $3, $4)",
                [user, practice, agency, role.rawValue])
        } catch let error as PostgresError where error.sqlState == "23503" {
            throw AccessError(.notFound, "no such user, agency or practice")
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw AccessError(.conflict, "the user already belongs to that organization")
        }
    }

    /// The id of the user with `email`.
    public func user(email: String) async throws -> UUID {
        let rows = try await pool.query("select id from enclave.users where lower(email) = lower($1)", [email])
        guard let id = try rows.first?.decode(UUID.self, "id") else {
            throw AccessError(.notFound, "no user with that email")
        }
        return id
    }

    /// Disables a user: every session ends now, and no sign-in succeeds.
    /// Clears a user's code lock (set after too many wrong one-time codes) and forgets the
    /// failures; the database audits it (`auth.mfa_unlocked`).
    public func unlockCodes(email: String) async throws {
        _ = try await mappingAccessErrors {
            try await pool.query("select enclave_private.unlock_mfa($1)", [email])
        }
    }

    public func disable(user: UUID) async throws {
        try await pool.withTransaction { transaction in
            let updated = try await transaction.execute(
                "update enclave.users set disabled_at = coalesce(disabled_at, now()) where id = $1", [user])
            guard updated == 1 else { throw AccessError(.notFound, "no such user") }
            try await transaction.query(
                "update enclave.sessions set revoked_at = now() where user_id = $1 and revoked_at is null", [user])
            try await transaction.audit(
                AuditEvent(
                    tenant: AuditEvent.platform, action: .userDisabled, objectType: "user",
                    objectID: user.uuidString.lowercased()))
        }
    }

    /// Agreements, optionally of one practice, for operators.
    public func agreements(practice: UUID? = nil) async throws -> [(
        id: UUID, agency: String, practice: String, status: String, scopes: [String], expiresAt: Date?
    )] {
        try await pool.query(
            """
            select b.id, a.name as agency, p.name as practice, b.status, b.scopes, b.expires_at
            from enclave.baas b join enclave.agencies a on a.id = b.agency_id join enclave.practices p on p.id = b.practice_id
            where $1::uuid is null or b.practice_id = $1
            order by b.created_at
            """,
            [practice]
        ).map {
            (
                try $0.decode(UUID.self, "id"), try $0.decode(String.self, "agency"),
                try $0.decode(String.self, "practice"),
                try $0.decode(String.self, "status"), try $0.decode([String].self, "scopes"),
                try $0.decode(Date?.self, "expires_at")
            )
        }
    }

    /// Records `baa.expired` once for every agreement whose expiry has passed (they already
    /// grant nothing); returns how many it recorded. Meant to run periodically.
    public func recordExpiredAgreements() async throws -> Int {
        Int(
            try await pool.query("select enclave_private.record_expired_baas() as n").first?.decode(Int32.self, "n")
                ?? 0)
    }

    static func checkEmail(_ email: String) throws -> String {
        let trimmed = email.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard trimmed.utf8.count <= 320, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !parts[1].hasPrefix("."), !parts[1].hasSuffix("."), !trimmed.contains(where: \.isWhitespace)
        else { throw AccessError(.invalidInput, "not an email address") }
        return trimmed
    }

    static func checkPassword(_ password: String) throws {
        guard password.count >= 12 else { throw AccessError(.invalidInput, "a password has at least 12 characters") }
        guard password.utf8.count <= 1024 else { throw AccessError(.invalidInput, "a password has at most 1024 bytes") }
    }
}
