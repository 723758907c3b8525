import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// Compliance in the console: a practice owner's page (break-glass to acknowledge, alerts,
/// legal holds, retention and alert settings, the "download our data" export), an alert with
/// its audit events, and the platform responder's emergency access page.
extension Console {
    func compliancePage<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let compliance = services.compliance
            let settings = try await compliance.settings(token, practice: practice)
            let glass = try await compliance.breakGlass(token, practice: practice)
            let alerts = try await compliance.alerts(token, practice: practice, limit: 50)
            let holds = try await compliance.holds(token, practice: practice)
            func days(_ value: Int?) -> String { value.map(String.init) ?? "" }
            return page(
                "compliance",
                [
                    "practice": id(practice),
                    "breakGlass": glass.map(Self.breakGlassRow),
                    "alerts": alerts.map { Self.alertRow($0, back: "/practices/\(id(practice))/compliance") },
                    "holds": holds.map { hold in
                        [
                            "id": id(hold.id),
                            "scope": hold.wholePractice ? "the whole practice" : "\(hold.leads) leads",
                            "reason": hold.reason, "by": hold.placedBy, "at": Self.format(hold.placedAt),
                            "active": hold.releasedAt == nil,
                            // Only an operator releases an operator's hold.
                            "releasable": hold.releasedAt == nil && hold.placedBy != "operator",
                        ] as [String: Any]
                    },
                    "recordingsDays": days(settings.recordingsDays), "transcriptsDays": days(settings.transcriptsDays),
                    "formFieldsDays": days(settings.formFieldsDays), "leadsDays": days(settings.leadsDays),
                    "readsPerHour": settings.readsPerHour, "hoursStart": settings.hoursStart,
                    "hoursEnd": settings.hoursEnd, "timeZone": settings.timeZone,
                    "ageRecipient": settings.ageRecipient ?? "", "hasAgeKey": settings.ageRecipient != nil,
                ], request)
        }
    }

    static func breakGlassRow(_ glass: BreakGlass) -> [String: Any] {
        [
            "id": glass.id.uuidString.lowercased(), "responder": glass.responderEmail, "reason": glass.reason,
            "opened": format(glass.openedAt), "expires": format(glass.expiresAt), "active": glass.active,
            "acknowledged": glass.acknowledgedAt != nil, "practice": glass.practiceName,
            "practiceID": glass.practiceID.uuidString.lowercased(),
        ]
    }

    static func alertRow(_ alert: AccessAlert, back: String) -> [String: Any] {
        let counts = alert.details.keys.sorted().filter {
            !["break_glass", "agreement", "endpoint", "request"].contains($0)
        }
        .map { "\($0.replacingOccurrences(of: "_", with: " ")): \(alert.details[$0] ?? "")" }
        .joined(separator: ", ")
        return [
            "id": alert.id.uuidString.lowercased(), "summary": alert.kind.summary, "who": alert.subjectEmail ?? false,
            "practice": alert.practiceName, "at": format(alert.createdAt), "counts": counts.isEmpty ? false : counts,
            "acknowledged": alert.acknowledgedAt != nil, "events": alert.auditSeqs.count, "back": back,
        ]
    }

    /// The break-glass banner of an owner's pages: accesses not yet acknowledged, of one
    /// practice or (nil) of every practice the caller owns, in one query.
    func breakGlassBanner(_ token: SessionToken, practice: UUID?) async -> [[String: Any]] {
        let all = (try? await services.compliance.breakGlass(token, practice: practice)) ?? []
        return all.filter { $0.acknowledgedAt == nil }.map(Self.breakGlassRow)
    }

    struct ComplianceForm: Decodable {
        let csrf: String
        let recordingsDays: String?
        let transcriptsDays: String?
        let formFieldsDays: String?
        let leadsDays: String?
        let readsPerHour: String?
        let hoursStart: String?
        let hoursEnd: String?
        let timeZone: String?
        let ageRecipient: String?
        let password: String?
        let code: String?
    }

    func saveCompliance<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: ComplianceForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            func days(_ text: String?, _ name: String) throws -> Int? {
                let trimmed = (text ?? "").trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { return nil }
                guard let value = Int(trimmed) else {
                    throw AccessError(.invalidInput, "\(name) is a whole number of days")
                }
                return value
            }
            func number(_ text: String?, _ name: String, default value: Int) throws -> Int {
                let trimmed = (text ?? "").trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { return value }
                guard let parsed = Int(trimmed) else { throw AccessError(.invalidInput, "\(name) is a whole number") }
                return parsed
            }
            let recipient = (form.ageRecipient ?? "").trimmingCharacters(in: .whitespaces)
            let settings = ComplianceSettings(
                recordingsDays: try days(form.recordingsDays, "Recordings"),
                transcriptsDays: try days(form.transcriptsDays, "Transcripts"),
                formFieldsDays: try days(form.formFieldsDays, "Form fields"),
                leadsDays: try days(form.leadsDays, "Leads"),
                readsPerHour: try number(form.readsPerHour, "Leads read in an hour", default: 200),
                hoursStart: try number(form.hoursStart, "Opening hour", default: 0),
                hoursEnd: try number(form.hoursEnd, "Closing hour", default: 24),
                timeZone: (form.timeZone ?? "").isEmpty ? "UTC" : form.timeZone ?? "UTC",
                ageRecipient: recipient.isEmpty ? nil : recipient)
            return try await sensitive(
                request, token, form.password, form.code, action: "/practices/\(id(practice))/compliance",
                what: "change retention, alerts and the export key",
                hidden: [
                    ("recordingsDays", form.recordingsDays ?? ""), ("transcriptsDays", form.transcriptsDays ?? ""),
                    ("formFieldsDays", form.formFieldsDays ?? ""), ("leadsDays", form.leadsDays ?? ""),
                    ("readsPerHour", form.readsPerHour ?? ""), ("hoursStart", form.hoursStart ?? ""),
                    ("hoursEnd", form.hoursEnd ?? ""), ("timeZone", form.timeZone ?? ""),
                    ("ageRecipient", form.ageRecipient ?? ""),
                ]
            ) { fresh in
                try await services.compliance.setSettings(fresh, practice: practice, settings)
                return ConsoleAssets.redirect("/practices/\(id(practice))/compliance")
            }
        }
    }

    struct HoldForm: Decodable {
        let csrf: String
        let reason: String?
        let leads: String?
    }

    func placeHold<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response
    {
        try await withForm(request, context) { (form: HoldForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let ids = (form.leads ?? "").split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
            let leads = try ids.map { text -> UUID in
                guard let lead = UUID(uuidString: text) else { throw AccessError(.invalidInput, "lead ids are UUIDs") }
                return lead
            }
            _ = try await services.compliance.placeHold(
                token, practice: practice, leads: leads.isEmpty ? nil : leads, reason: form.reason ?? "")
            return ConsoleAssets.redirect("/practices/\(id(practice))/compliance")
        }
    }

    struct ReleaseForm: Decodable {
        let csrf: String
        let password: String?
        let code: String?
    }

    /// Releasing a hold lets PHI be deleted: it asks for the password and a code first.
    func releaseHold<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: ReleaseForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let hold = try uuid(context.parameters.get("hold"))
            return try await sensitive(
                request, token, form.password, form.code,
                action: "/practices/\(id(practice))/holds/\(id(hold))/release", what: "release this legal hold",
                hidden: []
            ) { fresh in
                try await services.compliance.releaseHold(fresh, id: hold)
                return ConsoleAssets.redirect("/practices/\(id(practice))/compliance")
            }
        }
    }

    func acknowledgeBreakGlass<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context)
        async throws -> Response
    {
        try await withForm(request, context) { (_: CSRFForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            try await services.compliance.acknowledgeBreakGlass(token, id: try uuid(context.parameters.get("glass")))
            return ConsoleAssets.redirect("/practices/\(id(practice))/compliance")
        }
    }

    struct BackForm: Decodable {
        let csrf: String
        let back: String?
    }

    func acknowledgeAlert<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: BackForm, token) in
            try await services.compliance.acknowledgeAlert(token, id: try uuid(context.parameters.get("alert")))
            let back = form.back ?? ""
            // Only a page of ours: never an open redirect.
            let safe =
                back.range(of: #"^/(practices/[0-9a-f-]{36}/compliance|agency)$"#, options: .regularExpression) != nil
            return ConsoleAssets.redirect(safe ? back : "/home")
        }
    }

    /// One alert and the audit events behind it.
    func alertPage<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let alert = try uuid(context.parameters.get("alert"))
            let events = try await services.compliance.alertEvents(token, id: alert)
            return page(
                "alert",
                [
                    "events": events.map { event in
                        [
                            "seq": event.seq, "at": Self.format(event.at), "actor": event.actorEmail ?? "system",
                            "action": event.action, "object": event.objectType ?? "", "outcome": event.outcome,
                        ] as [String: Any]
                    }
                ], request)
        }
    }

    struct ExportForm: Decodable {
        let csrf: String
        let passphrase: String?
        let password: String?
        let code: String?
    }

    /// "Download our data": an age-encrypted tar, recorded as phi.export.
    func exportPractice<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: ExportForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            return try await sensitive(
                request, token, form.password, form.code, action: "/practices/\(id(practice))/export",
                what: "download all of this practice's data", hidden: [("passphrase", form.passphrase ?? "")]
            ) { fresh in
                let path = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "enclave-export-\(UUID().uuidString).tar.age"
                ).path
                _ = try await services.compliance.export(
                    fresh, practice: practice, passphrase: form.passphrase.flatMap { $0.isEmpty ? nil : $0 },
                    path: path,
                    context: requestContext(request))
                var headers = HTTPFields()
                ConsoleSecurity.apply(to: &headers)
                headers[.contentType] = "application/octet-stream"
                headers[.contentDisposition] =
                    "attachment; filename=\"enclave-\(id(practice))-\(Self.dayFormat(Date())).tar.age\""
                return Response(status: .ok, headers: headers, body: Self.fileBody(path))
            }
        }
    }

    /// A file's bytes in 64 KiB pieces; the file is removed once sent (or abandoned).
    static func fileBody(_ path: String) -> ResponseBody {
        ResponseBody { writer in
            defer { try? FileManager.default.removeItem(atPath: path) }
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw AccessError(.notFound, "the export is gone")
            }
            defer { try? handle.close() }
            while let data = try handle.read(upToCount: 64 * 1024), !data.isEmpty {
                try await writer.write(ByteBuffer(bytes: data))
            }
            try await writer.finish(nil)
        }
    }

    // MARK: the responder's page

    func breakGlassPage(_ request: Request) async -> Response {
        await guardedAsync(request) { token in
            let mine = try await services.compliance.responderBreakGlass(token)
            return page("breakglass", ["accesses": mine.map(Self.breakGlassRow)], request)
        }
    }

    struct BreakGlassForm: Decodable {
        let csrf: String
        let practice: String?
        let reason: String?
        let minutes: String?
        let password: String?
        let code: String?
    }

    func openBreakGlass<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: BreakGlassForm, token) in
            guard let practice = UUID(uuidString: form.practice ?? "") else {
                throw AccessError(.invalidInput, "the practice is its id (a UUID)")
            }
            guard let minutes = Int(form.minutes ?? ""), (1...60).contains(minutes) else {
                throw AccessError(.invalidInput, "emergency access lasts 1 to 60 minutes")
            }
            return try await sensitive(
                request, token, form.password, form.code, action: "/break-glass",
                what: "open emergency access to a practice",
                hidden: [
                    ("practice", form.practice ?? ""), ("reason", form.reason ?? ""), ("minutes", form.minutes ?? ""),
                ]
            ) { fresh in
                _ = try await services.compliance.openBreakGlass(
                    fresh, practice: practice, reason: form.reason ?? "", seconds: minutes * 60)
                return ConsoleAssets.redirect("/practices/\(id(practice))/leads")
            }
        }
    }

    func endBreakGlass<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (_: CSRFForm, token) in
            try await services.compliance.endBreakGlass(token, id: try uuid(context.parameters.get("glass")))
            return ConsoleAssets.redirect("/break-glass")
        }
    }

    /// The agency admin's alerts about the agency's staff.
    func agencyAlerts(_ token: SessionToken, agency: UUID) async throws -> [[String: Any]] {
        try await services.compliance.alerts(token, agency: agency, limit: 50).map {
            Self.alertRow($0, back: "/agency")
        }
    }
}
