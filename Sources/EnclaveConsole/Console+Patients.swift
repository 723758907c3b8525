import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// Patients' requests in the console (issue 29): finding a patient by number or email (posted,
/// never in a URL), logging their request with its deadline, the access report as a page to
/// print and as CSV, the patient's copy, erasure and restriction.
extension Console {
    struct LookupForm: Decodable {
        let csrf: String
        let phone: String?
        let email: String?
    }

    struct PatientRequestForm: Decodable {
        let csrf: String
        let leads: String?
        let kind: String?
        let receivedOn: String?
    }

    struct StaffScopeForm: Decodable {
        let csrf: String
        let email: String?
        let allow: String?
    }

    struct PatientActionForm: Decodable {
        let csrf: String
        let passphrase: String?
        let password: String?
        let code: String?
    }

    func patientsPage<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            try await patientsPage(request, token, practice: try uuid(context.parameters.get("practice")), found: nil)
        }
    }

    /// The page, with the leads a lookup found when there was one.
    private func patientsPage(
        _ request: Request, _ token: SessionToken, practice: UUID, found: [PatientRights.FoundLead]?
    ) async throws -> Response {
        let requests = try await services.patients.requests(token, practice: practice)
        let owner = try await services.identity.me(token).memberships.contains {
            $0.role == "practice_owner" && $0.practice == practice
        }
        let labels: [PatientRights.RequestKind: String] = [
            .accessReport: "Access report", .copy: "Copy of records", .erasure: "Erasure",
            .restriction: "Restriction",
        ]
        var values: [String: Any] = [
            "practice": id(practice), "owner": owner, "today": Self.dayFormat(Date()),
            "hasRequests": !requests.isEmpty,
            "requests": requests.map { row in
                [
                    "id": id(row.id), "kind": row.kind.rawValue, "label": labels[row.kind] ?? row.kind.rawValue,
                    "received": row.receivedOn, "due": row.dueOn, "overdue": row.overdue, "leads": row.leads,
                    "done": row.doneAt != nil, "doneAt": row.doneAt.map(Self.format) ?? "", "doneBy": row.doneBy ?? "",
                    "outcome": Self.outcome(row.outcome), "practice": id(practice), "owner": owner,
                    "report": row.kind == .accessReport, "copy": row.kind == .copy, "erasure": row.kind == .erasure,
                    "restriction": row.kind == .restriction,
                ] as [String: Any]
            },
        ]
        if let found {
            values["searched"] = true
            values["hasFound"] = !found.isEmpty
            values["foundCount"] = found.count == 1 ? "1 lead found." : "\(found.count) leads found."
            values["foundIDs"] = found.map { id($0.id) }.joined(separator: ",")
            values["found"] = found.map { lead in
                var state: [String] = []
                if lead.redactedAt != nil { state.append("erased or redacted") }
                if lead.restrictedAt != nil { state.append("restricted") }
                if lead.held { state.append("under legal hold") }
                if lead.hasRecording { state.append("recording") }
                return [
                    "id": id(lead.id), "short": String(id(lead.id).prefix(8)), "kind": lead.kind,
                    "when": Self.format(lead.occurredAt), "state": state.joined(separator: ", "),
                    "practice": id(practice),
                ] as [String: Any]
            }
        }
        return page("patients", values, request, token: token)
    }

    /// "erased 3, held 1" from a request's PHI-free outcome.
    static func outcome(_ json: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return "" }
        return object.keys.sorted().map { "\($0.replacingOccurrences(of: "_", with: " ")) \(object[$0] ?? "")" }
            .joined(separator: ", ")
    }

    func lookupPatient<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: LookupForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let found = try await services.patients.find(
                token, practice: practice, phoneNumber: form.phone, email: form.email,
                context: requestContext(request))
            return try await patientsPage(request, token, practice: practice, found: found)
        }
    }

    func logPatientRequest<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: PatientRequestForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            guard let kind = PatientRights.RequestKind(rawValue: form.kind ?? "") else {
                throw AccessError(.invalidInput, "choose what the patient asks for")
            }
            let leads = try (form.leads ?? "").split(separator: ",").map { text -> UUID in
                guard let lead = UUID(uuidString: String(text)) else {
                    throw AccessError(.invalidInput, "lead ids are UUIDs")
                }
                return lead
            }
            _ = try await services.patients.logRequest(
                token, practice: practice, kind: kind, receivedOn: form.receivedOn ?? "", leads: leads)
            return ConsoleAssets.redirect("/practices/\(id(practice))/patients")
        }
    }

    /// An owner allows a member of staff to answer patients' requests, or withdraws it.
    func setStaffScope<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: StaffScopeForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            guard
                try await services.patients.setStaffScopes(
                    token, practice: practice, staff: form.email ?? "",
                    scopes: form.allow == "yes" ? ["patients.requests"] : [])
            else { throw AccessError(.invalidInput, "no member of this practice's staff has that email address") }
            return ConsoleAssets.redirect("/practices/\(id(practice))/patients")
        }
    }

    /// The access report as a page to print.
    func patientReport<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let requestID = try uuid(context.parameters.get("request"))
            let (_, leads, received, events) = try await report(token, practice: practice, request: requestID)
            let unlinked = events.filter { !($0.linked && $0.linkIntact) }.count
            return page(
                "patient-report",
                [
                    "practice": id(practice), "request": id(requestID),
                    "leads": leads == 1 ? "1 lead" : "\(leads) leads", "received": received,
                    "today": Self.dayFormat(Date()), "intact": unlinked == 0, "unlinked": unlinked,
                    "hasEvents": !events.isEmpty,
                    "events": events.map { event in
                        [
                            "at": Self.format(event.at),
                            "lead": event.leadID.map { String(id($0).prefix(8)) } ?? "all (practice export)",
                            "access": event.kind, "who": event.who,
                            "agreement": event.agreementID.map { String(id($0).prefix(8)) }
                                ?? (event.breakGlassID != nil ? "emergency access" : ""),
                            "disclosure": event.disclosure ? "yes" : "",
                        ] as [String: Any]
                    },
                ], request, token: token)
        }
    }

    func patientReportCSV<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async
        -> Response
    {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let requestID = try uuid(context.parameters.get("request"))
            let events = try await report(token, practice: practice, request: requestID).events
            var headers = HTTPFields()
            ConsoleSecurity.apply(to: &headers)
            headers[.contentType] = "text/csv; charset=utf-8"
            headers[.contentDisposition] = "attachment; filename=\"access-report-\(Self.dayFormat(Date())).csv\""
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: PatientRights.csv(events))))
        }
    }

    private func report(_ token: SessionToken, practice: UUID, request: UUID) async throws -> (
        kind: PatientRights.RequestKind, leads: Int, received: String, events: [PatientRights.AccessEvent]
    ) {
        let found = try await services.patients.request(token, practice: practice, id: request)
        let received =
            try await services.patients.requests(token, practice: practice).first { $0.id == request }?.receivedOn ?? ""
        let events =
            found.leads.isEmpty ? [] : try await services.patients.report(token, practice: practice, leads: found.leads)
        return (found.kind, found.leads.count, received, events)
    }

    func completePatientRequest<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context)
        async throws -> Response
    {
        try await withForm(request, context) { (_: CSRFForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let requestID = try uuid(context.parameters.get("request"))
            guard try await services.patients.request(token, practice: practice, id: requestID).kind == .accessReport
            else { throw AccessError(.invalidInput, "only an access report is marked given by hand") }
            let events = try await services.patients.report(
                token, practice: practice,
                leads: try await services.patients.request(token, practice: practice, id: requestID).leads)
            try await services.patients.complete(
                token, practice: practice, id: requestID, outcome: ["events": events.count])
            return ConsoleAssets.redirect("/practices/\(id(practice))/patients")
        }
    }

    /// The patient's copy: a ZIP (age-encrypted to a passphrase when one is given), after the
    /// password and a code.
    func patientCopy<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: PatientActionForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let requestID = try uuid(context.parameters.get("request"))
            let passphrase = form.passphrase.flatMap { $0.isEmpty ? nil : $0 }
            return try await sensitive(
                request, token, form.password, form.code,
                action: "/practices/\(id(practice))/patients/requests/\(id(requestID))/copy",
                what: "download this patient's records", hidden: [("passphrase", form.passphrase ?? "")]
            ) { fresh in
                let name = passphrase == nil ? "patient-records.zip" : "patient-records.zip.age"
                let path = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "enclave-copy-\(UUID().uuidString)-\(name)"
                ).path
                _ = try await services.patients.copy(
                    fresh, practice: practice, request: requestID, passphrase: passphrase, path: path,
                    context: requestContext(request))
                var headers = HTTPFields()
                ConsoleSecurity.apply(to: &headers)
                headers[.contentType] = passphrase == nil ? "application/zip" : "application/octet-stream"
                headers[.contentDisposition] = "attachment; filename=\"\(name)\""
                return Response(status: .ok, headers: headers, body: Self.fileBody(path))
            }
        }
    }

    func erasePatient<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await patientAction(request, context, verb: "erase", what: "erase this patient's information") {
            fresh, practice, requestID in
            _ = try await services.patients.erase(
                fresh, practice: practice, request: requestID, context: requestContext(request))
        }
    }

    func restrictPatient<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await patientAction(request, context, verb: "restrict", what: "restrict this patient's information") {
            fresh, practice, requestID in
            _ = try await services.patients.restrict(
                fresh, practice: practice, request: requestID, context: requestContext(request))
        }
    }

    private func patientAction<Context: Hummingbird.RequestContext>(
        _ request: Request, _ context: Context, verb: String, what: String,
        _ body: @escaping (SessionToken, UUID, UUID) async throws -> Void
    ) async throws -> Response {
        try await withForm(request, context) { (form: PatientActionForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let requestID = try uuid(context.parameters.get("request"))
            return try await sensitive(
                request, token, form.password, form.code,
                action: "/practices/\(id(practice))/patients/requests/\(id(requestID))/\(verb)", what: what,
                hidden: []
            ) { fresh in
                try await body(fresh, practice, requestID)
                return ConsoleAssets.redirect("/practices/\(id(practice))/patients")
            }
        }
    }
}

extension Console.StaffScopeForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.LookupForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.PatientRequestForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.PatientActionForm: CSRFCarrying { var csrfToken: String { csrf } }
