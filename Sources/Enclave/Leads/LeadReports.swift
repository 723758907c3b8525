import Foundation
import Postgres

/// Lead counts and call durations by source, medium, campaign and day: attribution only, no
/// PHI is read or decrypted, so these are not PHI accesses and leave no `phi.read` event.
public struct LeadReports: Sendable {
    /// One row of a report.
    public struct Row: Sendable, Equatable {
        public let practiceID: UUID
        public let day: Date
        public let source: String?
        public let medium: String?
        public let campaign: String?
        public let leads: Int
        public let calls: Int
        public let forms: Int
        /// Calls whose disposition is `answered`.
        public let answered: Int
        /// Calls with any other disposition (missed, voicemail, busy, failed, abandoned); a call
        /// whose provider sent no disposition is neither answered nor missed.
        public let missed: Int
        public let callSeconds: Int
    }

    public let access: PracticeAccess
    public let agreements: AgreementService

    public init(access: PracticeAccess, agreements: AgreementService) {
        self.access = access
        self.agreements = agreements
    }

    /// One practice's report for `since ..< until`.
    public func practice(_ token: SessionToken, practice: UUID, since: Date, until: Date) async throws -> [Row] {
        guard since < until, until.timeIntervalSince(since) <= 400 * 86_400 else {
            throw AccessError(.invalidInput, "a report covers up to 400 days, ending after it starts")
        }
        return try await access.withPractice(token, practice: practice, scope: .leadsRead) { transaction in
            try await transaction.query(
                """
                select date_trunc('day', occurred_at, 'UTC') as day, source, medium, campaign, count(*)::int8 as leads,
                       count(*) filter (where kind = 'call')::int8 as calls, count(*) filter (where kind = 'form')::int8 as forms,
                       count(*) filter (where kind = 'call' and disposition = 'answered')::int8 as answered,
                       count(*) filter (where kind = 'call' and disposition <> 'answered')::int8 as missed,
                       coalesce(sum(duration_seconds), 0)::int8 as call_seconds
                from enclave.leads
                where tenant_id = $1 and occurred_at >= $2 and occurred_at < $3
                group by 1, 2, 3, 4 order by 1, 2, 3, 4
                """,
                [practice, since, until]
            ).map { row in
                Row(
                    practiceID: practice, day: try row.decode(Date.self, "day"),
                    source: try row.decode(String?.self, "source"),
                    medium: try row.decode(String?.self, "medium"), campaign: try row.decode(String?.self, "campaign"),
                    leads: try row.decode(Int.self, "leads"), calls: try row.decode(Int.self, "calls"),
                    forms: try row.decode(Int.self, "forms"), answered: try row.decode(Int.self, "answered"),
                    missed: try row.decode(Int.self, "missed"), callSeconds: try row.decode(Int.self, "call_seconds"))
            }
        }
    }

    /// One practice's figures in an agency-wide report: counts and sums only.
    public struct Figures: Sendable, Equatable {
        public let practiceID: UUID
        public let leads: Int
        public let calls: Int
        public let forms: Int
        public let answered: Int
        public let missed: Int
        public let callSeconds: Int
    }

    /// Leads in `since ..< until` for every practice `agency` has an agreement in force with that
    /// grants `leads.read`: every such practice for an agency admin, assigned or not; the ones
    /// assigned to them for a member. One query (`enclave_private.agency_figures`), whatever the
    /// number of practices; it reads no PHI column and records no access.
    public func agency(_ token: SessionToken, agency: UUID, since: Date, until: Date) async throws -> [UUID: Figures] {
        try await agreements.identity.withSession(token) { transaction in
            try await transaction.query(
                "select * from enclave_private.agency_figures($1, $2, $3)", [agency, since, until]
            ).reduce(into: [UUID: Figures]()) { figures, row in
                let practice = try row.decode(UUID.self, "practice_id")
                figures[practice] = Figures(
                    practiceID: practice, leads: try row.decode(Int.self, "leads"),
                    calls: try row.decode(Int.self, "calls"), forms: try row.decode(Int.self, "forms"),
                    answered: try row.decode(Int.self, "answered"), missed: try row.decode(Int.self, "missed"),
                    callSeconds: try row.decode(Int.self, "call_seconds"))
            }
        }
    }
}
