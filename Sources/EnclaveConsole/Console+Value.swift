import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// What leads are worth: marking a lead, the ROI report (with its CSV), recording ad spend.
extension Console {
    struct QualifyForm: Decodable {
        let csrf: String
        let qualification: String
        let value: String?
    }

    func qualify<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        try await withForm(request, context) { (form: QualifyForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let lead = try uuid(context.parameters.get("lead"))
            guard let qualification = LeadValue.Qualification(rawValue: form.qualification),
                let cents = Self.cents(form.value ?? "")
            else { throw AccessError(.invalidInput, "choose an outcome and give a value such as 1250 or 1250.50") }
            try await services.value.qualify(
                token, practice: practice, lead: lead, as: qualification, valueCents: cents)
            return ConsoleAssets.redirect("/practices/\(id(practice))/leads/\(id(lead))")
        }
    }

    /// The weeks of the report: the last eight, Monday to Sunday, UTC.
    static func reportRange(weeks: Int = 8) -> (since: Date, until: Date) {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let today = calendar.startOfDay(for: Date())
        let monday =
            calendar.date(from: calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: today)) ?? today
        let until = monday.addingTimeInterval(7 * 86_400)
        return (until.addingTimeInterval(-Double(weeks * 7) * 86_400), until)
    }

    func roi<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            return try await roiPage(request, token, practice: practice)
        }
    }

    /// The same report across every practice the caller reaches (an agency's), by practice.
    func agencyROI(_ request: Request) async -> Response {
        await guardedAsync(request) { token in try await roiPage(request, token, practice: nil) }
    }

    func roiPage(_ request: Request, _ token: SessionToken, practice: UUID?) async throws -> Response {
        let range = Self.reportRange()
        let report = try await roiReport(token, practice: practice, range: range)
        let names = practice == nil ? try await services.agreements.practiceNames(token) : [:]
        let rows = report.sources.sorted {
            ($0.week, names[$0.practiceID] ?? "") > ($1.week, names[$1.practiceID] ?? "")
        }
        return page(
            "roi",
            [
                "practice": practice.map(id) ?? false, "since": Self.dayFormat(range.since),
                "until": Self.dayFormat(range.until.addingTimeInterval(-86_400)),
                "csv": practice.map { "/practices/\(id($0))/roi.csv" } ?? "/roi.csv",
                "hasRows": !report.sources.isEmpty, "month": Self.utc("yyyy-MM").string(from: Date()),
                "sources": rows.map { row in
                    [
                        "week": Self.dayFormat(row.week), "source": row.source ?? "direct", "leads": row.leads,
                        "practiceName": practice == nil ? names[row.practiceID] ?? "Practice" : false,
                        "qualified": row.qualified, "value": Self.dollars(row.valueCents),
                        "spend": Self.dollars(row.spendCents),
                        "cpl": row.costPerLeadCents.map(Self.dollars) ?? "—",
                        "roi": row.roi.map { String(format: "%.0f%%", $0 * 100) } ?? "—",
                    ] as [String: Any]
                },
            ], request)
    }

    /// One practice's report, or (nil) the report across every practice the caller reaches.
    func roiReport(_ token: SessionToken, practice: UUID?, range: (since: Date, until: Date)) async throws
        -> LeadValue.Report
    {
        let value = services.value
        if let practice {
            return try await value.report(token, practice: practice, since: range.since, until: range.until)
        }
        return try await value.reportAcrossPractices(token, since: range.since, until: range.until)
    }

    /// The report's rows as CSV: attribution and figures, no PHI.
    func roiCSV<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            try await roiCSV(request, token, practice: try uuid(context.parameters.get("practice")))
        }
    }

    func agencyROICSV(_ request: Request) async -> Response {
        await guardedAsync(request) { token in try await roiCSV(request, token, practice: nil) }
    }

    func roiCSV(_ request: Request, _ token: SessionToken, practice: UUID?) async throws -> Response {
        let range = Self.reportRange()
        let report = try await roiReport(token, practice: practice, range: range)
        var csv = CSV.line([
            "practice_id", "week", "source", "medium", "campaign", "leads", "qualified", "value_usd",
            "source_spend_usd", "source_cost_per_lead_usd", "source_roi",
        ])
        for row in report.rows {
            let source = report.sources.first {
                $0.practiceID == row.practiceID && $0.week == row.week && $0.source == row.source
            }
            csv += CSV.line([
                id(row.practiceID), Self.dayFormat(row.week), row.source ?? "", row.medium ?? "", row.campaign ?? "",
                "\(row.leads)", "\(row.qualified)", Self.dollars(row.valueCents),
                source.map { Self.dollars($0.spendCents) } ?? "", source?.costPerLeadCents.map(Self.dollars) ?? "",
                source?.roi.map { String(format: "%.4f", $0) } ?? "",
            ])
        }
        var headers = HTTPFields()
        ConsoleSecurity.apply(to: &headers)
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] =
            "attachment; filename=\"roi-\(practice.map(id) ?? "practices")-\(Self.dayFormat(range.since)).csv\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: csv)))
    }

    struct SpendForm: Decodable {
        let csrf: String
        let month: String
        let source: String
        let amount: String
    }

    func spend<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        try await withForm(request, context) { (form: SpendForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            guard let cents = Self.cents(form.amount) else {
                throw AccessError(.invalidInput, "give the amount in dollars, such as 1500 or 1500.25")
            }
            try await services.value.recordSpend(
                token, practice: practice, month: form.month, source: form.source, amountCents: cents)
            return ConsoleAssets.redirect("/practices/\(id(practice))/roi")
        }
    }

    /// `1250`, `1250.5` or `1250.50` dollars as cents; empty is 0.
    static func cents(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: ",", with: "")
        if trimmed.isEmpty { return 0 }
        guard trimmed.wholeMatch(of: /[0-9]{1,9}(\.[0-9]{1,2})?/) != nil else { return nil }
        let parts = trimmed.split(separator: ".")
        let whole = Int64(parts[0]) ?? 0
        let fraction = parts.count > 1 ? Int64(parts[1].padding(toLength: 2, withPad: "0", startingAt: 0)) ?? 0 : 0
        return whole * 100 + fraction
    }

    static func dollars(_ cents: Int64) -> String {
        String(format: "%lld.%02lld", cents / 100, cents % 100)
    }
}
