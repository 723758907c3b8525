import Foundation
import Postgres

/// A permission an agreement grants an agency over a practice's data.
public enum Scope: String, Sendable, CaseIterable, Codable {
    case leadsRead = "leads.read"
    case recordingsListen = "recordings.listen"
    case leadsExport = "leads.export"
    case trackingManage = "tracking.manage"
    /// Marking leads qualified, unqualified or spam, with a value.
    case leadsQualify = "leads.qualify"
    /// The full transcript of calls; without it, agency staff see the redacted form only.
    case transcriptsFull = "transcripts.full"
}

/// A Business Associate Agreement between an agency and a practice.
public struct Agreement: Sendable, Equatable {
    public let id: UUID
    public let agencyID: UUID
    public let practiceID: UUID
    public let scopes: [Scope]
    /// `proposed`, `active`, `declined` or `revoked`.
    public let status: String
    public let effectiveAt: Date
    public let expiresAt: Date?
    /// Active, effective and not expired: it grants access now.
    public let inForce: Bool
    public let proposedBy: UUID
    public let agencyName: String
    /// SHA-256 of the signed agreement document.
    public let documentSHA256: [UInt8]
}

/// Proposing, deciding and revoking agreements, and assigning agency staff to practices.
/// Each action is checked by the database against the caller's session and roles.
public struct AgreementService: Sendable {
    public let identity: IdentityService

    public init(identity: IdentityService) {
        self.identity = identity
    }

    /// An agency admin proposes an agreement; it grants nothing until a practice owner approves.
    public func propose(
        _ token: SessionToken,
        agency: UUID,
        practice: UUID,
        scopes: [Scope],
        effectiveAt: Date,
        expiresAt: Date?,
        documentSHA256: [UInt8]
    ) async throws -> UUID {
        guard !scopes.isEmpty else { throw AccessError(.invalidInput, "an agreement needs at least one scope") }
        guard documentSHA256.count == 32 else {
            throw AccessError(.invalidInput, "the signed document's SHA-256 must be 32 bytes")
        }
        if let expiresAt, expiresAt <= effectiveAt {
            throw AccessError(.invalidInput, "an agreement must expire after it takes effect")
        }
        return try await identity.withSession(token) { transaction in
            let row = try await transaction.query(
                "select enclave_private.propose_baa($1, $2, $3, $4, $5, $6) as id",
                [agency, practice, scopes.map(\.rawValue), effectiveAt, expiresAt, documentSHA256]
            ).first
            guard let id = try row?.decode(UUID.self, "id") else { throw AccessError(.conflict, "not proposed") }
            return id
        }
    }

    /// A practice owner approves (needs a fresh re-authentication; never the proposer).
    public func approve(_ token: SessionToken, agreement: UUID) async throws {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.decide_baa($1, true)", [agreement])
        }
    }

    /// A practice owner declines (needs a fresh re-authentication).
    public func decline(_ token: SessionToken, agreement: UUID) async throws {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.decide_baa($1, false)", [agreement])
        }
    }

    /// Either side revokes (needs a fresh re-authentication); access ends on the next statement.
    public func revoke(_ token: SessionToken, agreement: UUID) async throws {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.revoke_baa($1)", [agreement])
        }
    }

    /// Agreements of the caller's practices and agencies.
    public func list(_ token: SessionToken) async throws -> [Agreement] {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                """
                select id, agency_id, practice_id, scopes, status, effective_at, expires_at, in_force, proposed_by,
                       agency_name, document_sha256
                from enclave_private.list_agreements()
                """
            ).map { row in
                Agreement(
                    id: try row.decode(UUID.self, "id"),
                    agencyID: try row.decode(UUID.self, "agency_id"),
                    practiceID: try row.decode(UUID.self, "practice_id"),
                    scopes: try row.decode([String].self, "scopes").compactMap(Scope.init(rawValue:)),
                    status: try row.decode(String.self, "status"),
                    effectiveAt: try row.decode(Date.self, "effective_at"),
                    expiresAt: try row.decode(Date?.self, "expires_at"),
                    inForce: try row.decode(Bool.self, "in_force"),
                    proposedBy: try row.decode(UUID.self, "proposed_by"),
                    agencyName: try row.decode(String.self, "agency_name"),
                    documentSHA256: try row.decode([UInt8].self, "document_sha256")
                )
            }
        }
    }

    /// An agency admin assigns one of the agency's members to a practice (grants nothing
    /// without an agreement in force).
    public func assign(_ token: SessionToken, agency: UUID, practice: UUID, member: UUID) async throws {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.assign_member($1, $2, $3, true)", [agency, practice, member])
        }
    }

    /// Removes an assignment; the member's access ends on the next statement.
    public func unassign(_ token: SessionToken, agency: UUID, practice: UUID, member: UUID) async throws {
        let removed = try await identity.withSession(token) { transaction in
            try await transaction.query(
                "select enclave_private.assign_member($1, $2, $3, false) as done", [agency, practice, member]
            ).first?.decode(Bool.self, "done") ?? false
        }
        guard removed else { throw AccessError(.notFound, "no such assignment") }
    }

    /// The names of the practices of the agreements the caller may see (not PHI; reaching a
    /// practice's data still takes the gate).
    public func practiceNames(_ token: SessionToken) async throws -> [UUID: String] {
        try await identity.withSession(token) { transaction in
            Dictionary(
                try await transaction.query("select practice_id, name from enclave_private.agreement_practices()").map {
                    (try $0.decode(UUID.self, "practice_id"), try $0.decode(String.self, "name"))
                }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Who reaches a practice through agreements in force (its owners only): the agency, the
    /// scopes, the expiry, each assigned member and their last access to the practice.
    public struct Reach: Sendable, Equatable {
        public let agreementID: UUID
        public let agency: String
        public let scopes: [String]
        public let expiresAt: Date?
        public let member: String?
        public let lastAccess: Date?
    }

    public func reach(_ token: SessionToken, practice: UUID) async throws -> [Reach] {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                "select agreement_id, agency_name, scopes, expires_at, member_email, last_access from enclave_private.practice_reach($1)",
                [practice]
            ).map {
                Reach(
                    agreementID: try $0.decode(UUID.self, "agreement_id"),
                    agency: try $0.decode(String.self, "agency_name"),
                    scopes: try $0.decode([String].self, "scopes"), expiresAt: try $0.decode(Date?.self, "expires_at"),
                    member: try $0.decode(String?.self, "member_email"),
                    lastAccess: try $0.decode(Date?.self, "last_access"))
            }
        }
    }

    /// An agency's members and the practices each is assigned to (its admins only).
    public func members(_ token: SessionToken, agency: UUID) async throws
        -> [(id: UUID, email: String, name: String, practices: [UUID])]
    {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                "select user_id, email, display_name, practices from enclave_private.agency_members($1)", [agency]
            ).map {
                (
                    try $0.decode(UUID.self, "user_id"), try $0.decode(String.self, "email"),
                    try $0.decode(String.self, "display_name"), try $0.decode([UUID].self, "practices")
                )
            }
        }
    }

    /// Practices the caller can reach now for `scope`, with how (membership or agreement).
    /// One page of the practices the caller reaches (by name, `limit` from `offset`), those whose
    /// name contains `filter` (case-insensitive; empty for all), and how many match: the home page
    /// of someone who reaches thousands asks for fifty.
    public func reachablePractices(
        _ token: SessionToken, filter: String, offset: Int, limit: Int, scope: Scope = .leadsRead
    ) async throws -> (practices: [(id: UUID, name: String, via: String)], matching: Int) {
        try await identity.withSession(token) { transaction in
            let rows = try await transaction.query(
                """
                select practice_id, name, via, count(*) over () as matching
                from enclave_private.reachable_practices($1)
                where $2 = '' or strpos(lower(name), lower($2)) > 0
                order by name, practice_id offset $3 limit $4
                """, [scope.rawValue, filter, offset, limit])
            let practices = try rows.map {
                (
                    id: try $0.decode(UUID.self, "practice_id"), name: try $0.decode(String.self, "name"),
                    via: try $0.decode(String.self, "via")
                )
            }
            return (practices, try rows.first?.decode(Int.self, "matching") ?? 0)
        }
    }

    public func reachablePractices(_ token: SessionToken, scope: Scope = .leadsRead) async throws
        -> [(id: UUID, name: String, via: String)]
    {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                "select practice_id, name, via from enclave_private.reachable_practices($1) order by name",
                [scope.rawValue]
            ).map {
                (
                    try $0.decode(UUID.self, "practice_id"), try $0.decode(String.self, "name"),
                    try $0.decode(String.self, "via")
                )
            }
        }
    }
}
