import Foundation
import Postgres

/// What leads are worth: qualification and value, ad spend, the ROI report and the conversion
/// export. Built from attribution, qualification and value only: no PHI is read or decrypted.
public struct LeadValue: Sendable {
    public let access: PracticeAccess
    public let agreements: AgreementService

    public init(access: PracticeAccess, agreements: AgreementService) {
        self.access = access
        self.agreements = agreements
    }

    public enum Qualification: String, Sendable, CaseIterable {
        case qualified, unqualified, spam
    }

    /// Marks a lead (the practice's owners, or agency staff whose agreement grants leads.qualify).
    public func qualify(
        _ token: SessionToken, practice: UUID, lead: UUID, as qualification: Qualification, valueCents: Int64
    ) async throws {
        let marked = try await access.withPractice(token, practice: practice, scope: .leadsQualify) { transaction in
            try await transaction.query(
                "select enclave_private.qualify_lead($1, $2, $3) as marked", [lead, qualification.rawValue, valueCents]
            ).first?.decode(Bool.self, "marked")
        }
        guard marked == true else { throw AccessError(.notFound, "no such lead") }
    }

    /// Records a practice's ad spend for a month (`yyyy-MM`) and a source, replacing what was there.
    public func recordSpend(_ token: SessionToken, practice: UUID, month: String, source: String, amountCents: Int64)
        async throws
    {
        guard let first = Self.monthStart(month) else { throw AccessError(.invalidInput, "a month is YYYY-MM") }
        let source = source.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(source.count), (0...100_000_000_000).contains(amountCents) else {
            throw AccessError(.invalidInput, "a source has 1 to 200 characters and an amount 0 or more cents")
        }
        try await agreements.identity.withSession(token) { transaction in
            try await transaction.query(
                "select enclave_private.record_ad_spend($1, $2::text::date, $3, $4)",
                [practice, first, source, amountCents])
        }
    }

    /// One week's leads of one source, medium and campaign.
    public struct Row: Sendable, Equatable {
        public let practiceID: UUID
        public let week: Date
        public let source: String?
        public let medium: String?
        public let campaign: String?
        public let leads: Int
        public let qualified: Int
        public let valueCents: Int64
    }

    /// One week of one source, with its spend (each month's spend spread evenly over its days).
    public struct SourceWeek: Sendable, Equatable {
        public let practiceID: UUID
        public let week: Date
        public let source: String?
        public let leads: Int
        public let qualified: Int
        public let valueCents: Int64
        public let spendCents: Int64
        /// Spend per lead, when there were leads.
        public var costPerLeadCents: Int64? { leads > 0 ? (spendCents + Int64(leads) / 2) / Int64(leads) : nil }
        /// (value − spend) ÷ spend, when there was spend.
        public var roi: Double? { spendCents > 0 ? Double(valueCents - spendCents) / Double(spendCents) : nil }
    }

    public struct Report: Sendable, Equatable {
        public var rows: [Row]
        public var sources: [SourceWeek]
    }

    /// A practice's report for the days `since ..< until` (UTC midnights), weeks from Monday.
    public func report(_ token: SessionToken, practice: UUID, since: Date, until: Date) async throws -> Report {
        guard since < until, until.timeIntervalSince(since) <= 400 * 86_400,
            since.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) == 0,
            until.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) == 0
        else { throw AccessError(.invalidInput, "a report covers whole UTC days, up to 400, ending after it starts") }
        return try await access.withPractice(token, practice: practice, scope: .leadsRead) { transaction in
            let rows = try await transaction.query(
                """
                select date_trunc('week', occurred_at, 'UTC') as week, source, medium, campaign, count(*)::int8 as leads,
                       count(*) filter (where qualification = 'qualified')::int8 as qualified,
                       coalesce(sum(value_cents) filter (where qualification = 'qualified'), 0)::int8 as value_cents
                from enclave.leads
                where tenant_id = $1 and occurred_at >= $2 and occurred_at < $3 and qualification is distinct from 'spam'
                group by 1, 2, 3, 4 order by 1, 2, 3, 4
                """,
                [practice, since, until]
            ).map { row in
                Row(
                    practiceID: practice, week: try row.decode(Date.self, "week"),
                    source: try row.decode(String?.self, "source"), medium: try row.decode(String?.self, "medium"),
                    campaign: try row.decode(String?.self, "campaign"), leads: try row.decode(Int.self, "leads"),
                    qualified: try row.decode(Int.self, "qualified"),
                    valueCents: try row.decode(Int64.self, "value_cents"))
            }
            let spend = try await transaction.query(
                """
                select date_trunc('week', d, 'UTC') as week, s.source,
                       round(sum(s.amount_cents::numeric
                                 / extract(day from (s.month + interval '1 month' - interval '1 day'))))::int8 as spend
                from generate_series($2::timestamptz, $3::timestamptz - interval '1 day', interval '1 day') d
                join enclave.ad_spend s on s.tenant_id = $1 and s.month = (d at time zone 'UTC')::date - (extract(day from d at time zone 'UTC')::int - 1)
                group by 1, 2
                """,
                [practice, since, until]
            ).map { row in
                (
                    week: try row.decode(Date.self, "week"), source: try row.decode(String.self, "source"),
                    spend: try row.decode(Int64.self, "spend")
                )
            }
            return Report(rows: rows, sources: Self.bySource(rows, spend: spend, practice: practice))
        }
    }

    /// The same across every practice the caller reaches for figures now (the practices of
    /// agreements in force with the caller's agencies: an admin's every one, a member's those
    /// assigned; and the caller's own), from one set-based query that reads no PHI
    /// (`enclave_private.reachable_value`).
    public func reportAcrossPractices(_ token: SessionToken, since: Date, until: Date) async throws -> Report {
        guard since < until, until.timeIntervalSince(since) <= 400 * 86_400,
            since.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) == 0,
            until.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) == 0
        else { throw AccessError(.invalidInput, "a report covers whole UTC days, up to 400, ending after it starts") }
        let found = try await agreements.identity.withSession(token) { transaction in
            try await transaction.query(
                """
                select row_kind, practice_id, week, source, medium, campaign, leads, qualified, value_cents, spend_cents
                from enclave_private.reachable_value($1, $2)
                order by practice_id, week, source, medium, campaign
                """,
                [since, until])
        }
        var rows: [UUID: [Row]] = [:]
        var spend: [UUID: [(week: Date, source: String, spend: Int64)]] = [:]
        for row in found {
            let practice = try row.decode(UUID.self, "practice_id")
            let week = try row.decode(Date.self, "week")
            if try row.decode(String.self, "row_kind") == "spend" {
                spend[practice, default: []].append(
                    (week, try row.decode(String.self, "source"), try row.decode(Int64.self, "spend_cents")))
            } else {
                rows[practice, default: []].append(
                    Row(
                        practiceID: practice, week: week, source: try row.decode(String?.self, "source"),
                        medium: try row.decode(String?.self, "medium"),
                        campaign: try row.decode(String?.self, "campaign"), leads: try row.decode(Int.self, "leads"),
                        qualified: try row.decode(Int.self, "qualified"),
                        valueCents: try row.decode(Int64.self, "value_cents")))
            }
        }
        var all = Report(rows: [], sources: [])
        for practice in Set(rows.keys).union(spend.keys).sorted(by: { $0.uuidString < $1.uuidString }) {
            let practiceRows = rows[practice] ?? []
            all.rows += practiceRows
            all.sources += Self.bySource(practiceRows, spend: spend[practice] ?? [], practice: practice)
        }
        return all
    }

    static func bySource(_ rows: [Row], spend: [(week: Date, source: String, spend: Int64)], practice: UUID)
        -> [SourceWeek]
    {
        struct Key: Hashable {
            let week: Date
            let source: String?
        }
        var totals: [Key: (leads: Int, qualified: Int, value: Int64, spend: Int64)] = [:]
        for row in rows {
            let key = Key(week: row.week, source: row.source)
            let now = totals[key] ?? (0, 0, 0, 0)
            totals[key] = (now.leads + row.leads, now.qualified + row.qualified, now.value + row.valueCents, now.spend)
        }
        for entry in spend {
            let key = Key(week: entry.week, source: entry.source)
            let now = totals[key] ?? (0, 0, 0, 0)
            totals[key] = (now.leads, now.qualified, now.value, now.spend + entry.spend)
        }
        return totals.map { key, value in
            SourceWeek(
                practiceID: practice, week: key.week, source: key.source, leads: value.leads,
                qualified: value.qualified, valueCents: value.value, spendCents: value.spend)
        }.sorted { ($0.week, $0.source ?? "") < ($1.week, $1.source ?? "") }
    }

    /// A qualified lead as an offline conversion: its click id, when, and its value. Nothing else.
    public struct Conversion: Sendable, Equatable {
        public let gclid: String
        public let at: Date
        public let valueCents: Int64
    }

    /// The qualified leads with a Google click id in `since ..< until`, recorded as
    /// `conversions.exported` in the practice's trail.
    public func conversions(
        _ token: SessionToken, practice: UUID, since: Date, until: Date, context: RequestContext = RequestContext()
    ) async throws -> [Conversion] {
        try await access.withPractice(token, practice: practice, scope: .leadsExport, context: context) { transaction in
            let found = try await transaction.query(
                """
                select gclid, occurred_at, coalesce(value_cents, 0) as value_cents from enclave.leads
                where tenant_id = $1 and occurred_at >= $2 and occurred_at < $3 and qualification = 'qualified'
                  and gclid is not null and restricted_at is null
                order by occurred_at, id
                """,
                [practice, since, until]
            ).map { row in
                Conversion(
                    gclid: try row.decode(String.self, "gclid"), at: try row.decode(Date.self, "occurred_at"),
                    valueCents: try row.decode(Int64.self, "value_cents"))
            }
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .conversionsExported, objectType: "practice",
                    objectID: practice.uuidString.lowercased(), details: ["rows": .int(found.count)]),
                context: context)
            return found
        }
    }

    /// Google Ads' offline conversion import layout (CSV, UTC).
    public static func googleAdsCSV(_ conversions: [Conversion], conversionName: String) -> String {
        let formatter = Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day().dateSeparator(.dash)
            .time(includingFractionalSeconds: false).timeSeparator(.colon)
        var csv =
            "Parameters:TimeZone=+0000\r\nGoogle Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency\r\n"
        for conversion in conversions {
            let time = formatter.format(conversion.at).replacingOccurrences(of: "T", with: " ")
                .replacingOccurrences(of: "Z", with: "")
            let value = String(format: "%.2f", Double(conversion.valueCents) / 100)
            csv +=
                [CSV.field(conversion.gclid), CSV.field(conversionName), CSV.field(time), value, "USD"].joined(
                    separator: ",")
                + "\r\n"
        }
        return csv
    }

    /// The first day of `yyyy-MM`, as `yyyy-MM-01`.
    static func monthStart(_ text: String) -> String? {
        guard text.wholeMatch(of: /[0-9]{4}-(0[1-9]|1[0-2])/) != nil else { return nil }
        return text + "-01"
    }
}
