import Foundation
import Postgres

/// Reading the trail: a practice owner's view of the practice, its accounting of disclosures,
/// and an agency admin's view of the agency's own people.
public struct AuditLog: Sendable {
    /// One event as a reader sees it.
    public struct Entry: Sendable, Equatable {
        public let chain: UUID
        public let seq: Int64
        public let at: Date
        public let actorID: UUID?
        public let actorEmail: String?
        public let action: String
        public let objectType: String?
        public let objectID: String?
        public let outcome: String
        public let reason: String?
        /// The recipient's agencies, for disclosures.
        public let agency: String?
    }

    /// Filters for a practice's trail.
    public struct Filter: Sendable {
        public var since: Date?
        public var until: Date?
        public var actor: UUID?
        public var action: AuditAction?
        /// Events before this sequence number (for paging back).
        public var beforeSeq: Int64?
        public var limit: Int

        public init(
            since: Date? = nil, until: Date? = nil, actor: UUID? = nil, action: AuditAction? = nil,
            beforeSeq: Int64? = nil, limit: Int = 100
        ) {
            self.since = since
            self.until = until
            self.actor = actor
            self.action = action
            self.beforeSeq = beforeSeq
            self.limit = limit
        }
    }

    public let identity: IdentityService

    public init(identity: IdentityService) {
        self.identity = identity
    }

    /// The practice's events, newest first (practice owners only).
    public func practiceEvents(_ token: SessionToken, practice: UUID, filter: Filter = Filter()) async throws -> [Entry]
    {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                """
                select seq, at, actor_id, actor_email, action, object_type, object_id, outcome, reason
                from enclave_private.practice_audit($1, $2, $3, $4, $5, $6, $7)
                """,
                [
                    practice, filter.since, filter.until, filter.actor, filter.action?.rawValue, filter.beforeSeq,
                    Int32(filter.limit),
                ]
            ).map { try Self.entry($0, chain: practice, agency: nil) }
        }
    }

    /// The most events one download holds; a longer trail is downloaded by date range.
    public static let exportLimit = 50_000

    /// The practice's events matching `filter`, oldest first, for a download (practice owners
    /// with a fresh session). The download is recorded as `audit.exported` in the transaction
    /// that reads the rows, so an export that is not recorded returns nothing. `filter.limit`
    /// is ignored: the download holds up to `exportLimit` events, and says so when it stops.
    public func exportPracticeEvents(
        _ token: SessionToken, practice: UUID, filter: Filter = Filter(), context: RequestContext = RequestContext()
    ) async throws -> (entries: [Entry], complete: Bool) {
        // Bound to the practice: the database records an access only for a caller who reaches it.
        try await identity.withSession(token, tenant: practice) { transaction in
            var entries: [Entry] = []
            var before: Int64?
            while entries.count <= Self.exportLimit {
                let page = try await transaction.query(
                    """
                    select seq, at, actor_id, actor_email, action, object_type, object_id, outcome, reason
                    from enclave_private.practice_audit($1, $2, $3, $4, $5, $6, 1000)
                    """,
                    [practice, filter.since, filter.until, filter.actor, filter.action?.rawValue, before]
                ).map { try Self.entry($0, chain: practice, agency: nil) }
                entries += page
                guard page.count == 1000, let last = page.last else { break }
                before = last.seq
            }
            let complete = entries.count <= Self.exportLimit
            entries = Array(entries.prefix(Self.exportLimit).reversed())
            var details: [String: AuditValue] = ["rows": .int(entries.count), "format": .string("csv")]
            if let action = filter.action { details["action"] = .string(action.rawValue) }
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .auditExported, objectType: "practice",
                    objectID: practice.uuidString.lowercased(), details: details),
                context: context)
            return (entries, complete)
        }
    }

    /// Who outside the practice received its PHI, when and why, newest first, a page of up to
    /// `limit` (at most 1,000) before `beforeSeq` (practice owners only).
    public func disclosures(
        _ token: SessionToken, practice: UUID, since: Date? = nil, until: Date? = nil, beforeSeq: Int64? = nil,
        limit: Int = 200
    ) async throws -> [Entry] {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                """
                select seq, at, recipient_id as actor_id, recipient_email as actor_email, agency_name, action, object_type,
                       object_id, 'ok' as outcome, reason
                from enclave_private.practice_disclosures($1, $2, $3, $4, $5)
                """,
                [practice, since, until, beforeSeq, Int32(min(max(limit, 1), 1_000))]
            ).map { try Self.entry($0, chain: practice, agency: try $0.decode(String?.self, "agency_name")) }
        }
    }

    /// Events of the agency's own people in every chain, newest first (agency admins only).
    public func agencyEvents(
        _ token: SessionToken, agency: UUID, since: Date? = nil, until: Date? = nil, limit: Int = 100
    )
        async throws -> [Entry]
    {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                """
                select tenant_id, seq, at, actor_id, actor_email, action, object_type, object_id, outcome, reason
                from enclave_private.agency_audit($1, $2, $3, $4)
                """,
                [agency, since, until, Int32(limit)]
            ).map { try Self.entry($0, chain: try $0.decode(UUID.self, "tenant_id"), agency: nil) }
        }
    }

    private static func entry(_ row: PostgresRow, chain: UUID, agency: String?) throws -> Entry {
        Entry(
            chain: chain,
            seq: try row.decode(Int64.self, "seq"),
            at: try row.decode(Date.self, "at"),
            actorID: try row.decode(UUID?.self, "actor_id"),
            actorEmail: try row.decode(String?.self, "actor_email"),
            action: try row.decode(String.self, "action"),
            objectType: try row.decode(String?.self, "object_type"),
            objectID: try row.decode(String?.self, "object_id"),
            outcome: try row.decode(String.self, "outcome"),
            reason: try row.decode(String?.self, "reason"),
            agency: agency
        )
    }
}
