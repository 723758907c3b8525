import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// A practice owner's audit trail and accounting of disclosures, and its CSV download.
extension Console {
    /// A practice owner's audit trail and accounting of disclosures, newest first.
    func auditTrail<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let log = services.auditLog
            let query = request.uri.queryParameters
            let filter = Self.auditFilter(
                action: query["action"].map(String.init), since: query["since"].map(String.init),
                until: query["until"].map(String.init))
            var shown = filter
            shown.limit = 200
            let events = try await log.practiceEvents(token, practice: practice, filter: shown)
            let disclosures = try await log.disclosures(
                token, practice: practice, since: filter.since, until: filter.until)
            func row(_ entry: AuditLog.Entry) -> [String: Any] {
                [
                    "seq": entry.seq, "at": Self.format(entry.at), "actor": entry.actorEmail ?? "system",
                    "action": entry.action, "object": entry.objectType ?? "", "outcome": entry.outcome,
                    "agency": entry.agency ?? "",
                ]
            }
            return page(
                "audit",
                [
                    "practice": id(practice), "events": events.map(row), "disclosures": disclosures.map(row),
                    "more": events.count == shown.limit, "moreDisclosures": disclosures.count == 200,
                    "action": filter.action?.rawValue ?? "", "since": filter.since.map(Self.dayFormat) ?? "",
                    "until": filter.until.map { Self.dayFormat($0.addingTimeInterval(-86_400)) } ?? "",
                    "actions": AuditAction.allCases.map {
                        ["name": $0.rawValue, "selected": $0 == filter.action] as [String: Any]
                    },
                ], request)
        }
    }

    /// The trail's filters from the page's fields: an action, and days (`until` inclusive).
    static func auditFilter(action: String?, since: String?, until: String?) -> AuditLog.Filter {
        AuditLog.Filter(
            since: since.flatMap(day), until: until.flatMap(day).map { $0.addingTimeInterval(86_400) },
            action: action.flatMap(AuditAction.init(rawValue:)))
    }

    struct AuditExportForm: Decodable {
        let csrf: String
        let action: String?
        let since: String?
        let until: String?
        let password: String?
        let code: String?
    }

    /// The filtered trail as CSV, oldest first: sensitive, and recorded as `audit.exported`.
    func exportAudit<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: AuditExportForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let filter = Self.auditFilter(action: form.action, since: form.since, until: form.until)
            return try await sensitive(
                request, token, form.password, form.code, action: "/practices/\(id(practice))/audit/export",
                what: "download this practice's audit trail",
                hidden: [("action", form.action ?? ""), ("since", form.since ?? ""), ("until", form.until ?? "")]
            ) { fresh in
                let (entries, complete) = try await services.auditLog.exportPracticeEvents(
                    fresh, practice: practice, filter: filter, context: requestContext(request))
                var csv = AuditCSV.header
                for entry in entries { csv += AuditCSV.line(entry) }
                if !complete {
                    csv += CSV.line(
                        [
                            "", "", "", "", "", "", "", "",
                            "truncated: the first \(AuditLog.exportLimit) events; narrow the dates for the rest",
                        ])
                }
                var headers = HTTPFields()
                ConsoleSecurity.apply(to: &headers)
                headers[.contentType] = "text/csv; charset=utf-8"
                headers[.contentDisposition] =
                    "attachment; filename=\"audit-\(id(practice))-\(Self.dayFormat(Date())).csv\""
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: csv)))
            }
        }
    }
}
