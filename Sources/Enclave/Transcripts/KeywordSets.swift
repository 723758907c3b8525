import Foundation
import Postgres
import Sealing

/// A practice's keyword sets, and how often its calls were tagged with each (issue 30).
///
/// Anyone who reads the practice's leads reads its sets. Its owners, and agency staff whose
/// agreement grants `tracking.manage`, change them, through `save_keyword_set` and
/// `delete_keyword_set`, which check the caller and record `keywords.changed`. The transcription
/// worker matches each new transcript against them.
public struct KeywordSets: Sendable {
    public let identity: IdentityService
    public let access: PracticeAccess
    public let keys: TenantKeyStore

    public init(identity: IdentityService, access: PracticeAccess, keys: TenantKeyStore) {
        self.identity = identity
        self.access = access
        self.keys = keys
    }

    /// The practice's keyword sets, by name.
    public func list(_ token: SessionToken, practice: UUID, context: RequestContext = RequestContext()) async throws
        -> [KeywordSet]
    {
        try await access.withPractice(token, practice: practice, scope: .leadsRead, context: context) { transaction in
            try await Self.sets(of: practice, transaction)
        }
    }

    /// The keyword sets of `practice`, in a transaction that reaches it (the worker's too).
    static func sets(of practice: UUID, _ transaction: Transaction) async throws -> [KeywordSet] {
        try await transaction.query(
            "select id, name, phrases, weight from enclave.keyword_sets where tenant_id = $1 order by name", [practice]
        ).map {
            KeywordSet(
                id: try $0.decode(UUID.self, "id"), name: try $0.decode(String.self, "name"),
                phrases: try $0.decode([String].self, "phrases"), weight: Int(try $0.decode(Int16.self, "weight")))
        }
    }

    /// Creates the set `name`, or replaces its phrases and weight; returns its id. Phrases are
    /// normalised as transcripts are (lower case words).
    ///
    /// - Throws: `.invalidInput` naming what is wrong; `.forbidden` for practice staff and agency
    ///   staff without `tracking.manage`.
    public func save(
        _ token: SessionToken, practice: UUID, name: String, phrases: [String], weight: Int = 1,
        context: RequestContext = RequestContext()
    ) async throws -> UUID {
        guard phrases.count <= 50, name.utf8.count <= 40, phrases.allSatisfy({ $0.utf8.count <= 200 }) else {
            throw AccessError(.invalidInput, DatabaseRefusal.keywordSetProblem("phrases"))
        }
        guard (-10...10).contains(weight) else {
            throw AccessError(.invalidInput, DatabaseRefusal.keywordSetProblem("weight"))
        }
        return try await identity.withSession(token, tenant: practice) { transaction in
            try await transaction.query(
                "select enclave_private.save_keyword_set($1, $2, $3, $4, $5, $6::text::inet, $7) as id",
                [
                    practice, name, phrases, Int32(weight), context.requestID, context.client.address,
                    context.client.userAgent,
                ]
            ).first?.decode(UUID.self, "id") ?? UUID()
        }
    }

    /// Deletes a set. Tags it gave calls stay on them.
    ///
    /// - Throws: `.notFound` for a set the practice does not have; `.forbidden` as `save`.
    public func delete(
        _ token: SessionToken, practice: UUID, keywordSet: UUID, context: RequestContext = RequestContext()
    ) async throws {
        let deleted = try await identity.withSession(token, tenant: practice) { transaction in
            try await transaction.query(
                "select enclave_private.delete_keyword_set($1, $2, $3, $4::text::inet, $5) as deleted",
                [practice, keywordSet, context.requestID, context.client.address, context.client.userAgent]
            ).first?.decode(Bool.self, "deleted") ?? false
        }
        guard deleted else { throw AccessError(.notFound, "no such keyword set") }
    }

    /// Calls tagged with one set on one day (UTC).
    public struct DayCount: Sendable, Equatable {
        public let day: Date
        public let tag: String
        public let calls: Int
    }

    /// How many calls each of the practice's sets tagged per day (UTC) in [since, until): counts
    /// from the tag tokens (an index lookup per set), no transcript decrypted and no caller named.
    public func tagCounts(
        _ token: SessionToken, practice: UUID, since: Date, until: Date, context: RequestContext = RequestContext()
    ) async throws -> [DayCount] {
        try await access.withPractice(token, practice: practice, scope: .leadsRead, context: context) { transaction in
            let sets = try await Self.sets(of: practice, transaction)
            guard !sets.isEmpty else { return [] }
            let index = try await keys.keys(practice, in: transaction).blindIndex()
            let tokens = try sets.map { try TranscriptTokens.tag($0.name, index).hex }
            return try await transaction.query(
                """
                select s.ord::int4 as ord, date_trunc('day', l.occurred_at, 'UTC') as day, count(*)::int8 as calls
                from unnest($2::text[]) with ordinality as s(token, ord)
                join enclave.leads l
                  on l.tenant_id = $1 and l.transcript_tokens @> array[decode(s.token, 'hex')]
                 and l.occurred_at >= $3 and l.occurred_at < $4
                group by 1, 2 order by 2, 1
                """,
                [practice, tokens, since, until]
            ).map {
                DayCount(
                    day: try $0.decode(Date.self, "day"), tag: sets[Int(try $0.decode(Int32.self, "ord")) - 1].name,
                    calls: Int(try $0.decode(Int64.self, "calls")))
            }
        }
    }
}
