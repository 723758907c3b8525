import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

/// The web console: server-rendered pages over the same service layer and sessions as the API.
///
/// The session token travels in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict); every
/// form carries a CSRF token; every page has a strict Content-Security-Policy and
/// `Cache-Control: no-store`; URLs and titles carry ids, never PHI. Refusals are pages: a
/// practice the caller no longer reaches shows "access to this practice has ended".
public struct Console: Sendable {
    let services: EnclaveServices
    let assets: ConsoleAssets

    /// The session cookie's name, for the API's recording playback.
    public static let sessionCookieName = ConsoleSecurity.sessionCookie

    public static func load(services: EnclaveServices) async throws -> Console {
        Console(services: services, assets: try await ConsoleAssets.load())
    }

    /// Adds the console's routes to `router`.
    public func addRoutes<Context: Hummingbird.RequestContext>(to router: Router<Context>) {
        router.get("/") { request, _ in
            request.cookies[ConsoleSecurity.sessionCookie] == nil
                ? ConsoleAssets.redirect("/sign-in") : ConsoleAssets.redirect("/home")
        }
        router.get("/static/console.css") { _, _ in staticFile(assets.stylesheet, "text/css; charset=utf-8") }
        router.get("/static/console.js") { _, _ in staticFile(assets.script, "text/javascript; charset=utf-8") }
        router.get("/sign-in") { request, _ in signInPage(request) }
        router.post("/sign-in") { request, context in try await signIn(request, context) }
        router.get("/sign-in/code") { request, _ in guarded(request) { _ in page("code", [:], request) } }
        router.post("/sign-in/code") { request, context in try await verifyCode(request, context) }
        router.get("/enroll") { request, _ in await enrollPage(request) }
        router.post("/enroll") { request, context in try await confirmEnrollment(request, context) }
        router.post("/sign-out") { request, context in try await signOut(request, context) }
        router.get("/signed-out") { request, _ in
            var response = page("signed-out", [:], request)
            response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, "", maxAge: 0))
            return response
        }
        router.get("/home") { request, _ in await home(request) }
        router.get("/agency") { request, _ in await agencyOverview(request) }
        router.post("/agency/proposals") { request, context in try await propose(request, context) }
        router.post("/agency/assignments") { request, context in try await assignment(request, context) }
        router.get("/account") { request, _ in await account(request) }
        router.post("/account/sessions/:session/revoke") { request, context in try await revokeSession(request, context)
        }
        router.post("/account/password") { request, context in try await changePassword(request, context) }
        router.get("/practices/:practice/audit") { request, context in await auditTrail(request, context) }
        router.get("/practices/:practice/reach") { request, context in await reach(request, context) }
        router.get("/practices/:practice/sources") { request, context in await sourcesPage(request, context) }
        router.get("/practices/:practice/webhooks") { request, context in await webhooksPage(request, context) }
        router.post("/practices/:practice/webhooks") { request, context in try await createWebhook(request, context) }
        router.post("/practices/:practice/webhooks/:webhook/delete") { request, context in
            try await deleteWebhook(request, context)
        }
        router.post("/practices/:practice/sources") { request, context in try await createSource(request, context) }
        router.post("/practices/:practice/sources/:source/rotate") { request, context in
            try await rotateSource(request, context)
        }
        router.get("/practices/:practice") { request, context in await dashboard(request, context) }
        router.get("/practices/:practice/leads") { request, context in await leads(request, context) }
        router.post("/practices/:practice/leads/:lead/redact") { request, context in try await redact(request, context)
        }
        router.get("/practices/:practice/leads/:lead") { request, context in await lead(request, context) }
        router.get("/practices/:practice/agreements") { request, context in await agreements(request, context) }
        router.post("/agreements/:agreement/:decision") { request, context in try await decide(request, context) }
    }

    // MARK: - Signing in

    func signInPage(_ request: Request, error: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        let csrf = SHA256.hexDigest((try? SecretBytes(randomCount: 32))?.withUnsafeBytes { Array($0) } ?? [])
        var response = assets.page("sign-in", ["csrf": csrf, "error": error as Any], status: status)
        response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.formCookie, csrf))
        return response
    }

    struct SignInForm: Decodable {
        let email: String
        let password: String
        let csrf: String
    }

    func signIn<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        guard let form: SignInForm = try await decodeForm(request, context),
            ConsoleSecurity.matches(form.csrf, request.cookies[ConsoleSecurity.formCookie]?.value)
        else { return forbiddenForm() }
        do {
            let login = try await services.identity.login(
                email: form.email, password: form.password, client: client(request))
            var response = ConsoleAssets.redirect(login.mfaEnrolled ? "/sign-in/code" : "/enroll")
            response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, login.token.value))
            return response
        } catch let error as AccessError where error.code == .throttled {
            return signInPage(request, error: "Too many failed sign-ins. Try again later.", status: .tooManyRequests)
        } catch is AccessError {
            return signInPage(request, error: "Wrong email or password.", status: .unauthorized)
        }
    }

    struct CodeForm: Decodable {
        let code: String
        let csrf: String
    }

    func verifyCode<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: CodeForm, token) in
            do {
                try await services.identity.verifyMFA(token, code: form.code.filter(\.isNumber))
                return ConsoleAssets.redirect("/home")
            } catch let error as AccessError where error.code == .invalidCredentials {
                return page(
                    "code", ["error": "That code is wrong or was used already."], request, status: .unauthorized)
            }
        }
    }

    func enrollPage(_ request: Request) async -> Response {
        await guardedAsync(request) { token in
            let enrollment = try await services.identity.beginMFAEnrollment(token)
            return page(
                "enroll",
                [
                    "qr": QRCode.svg(enrollment.uri, title: "QR code of your new authenticator secret") ?? "",
                    "secret": enrollment.secret,
                ], request)
        }
    }

    func confirmEnrollment<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: CodeForm, token) in
            do {
                try await services.identity.confirmMFA(token, code: form.code.filter(\.isNumber))
                return ConsoleAssets.redirect("/home")
            } catch let error as AccessError where error.code == .invalidCredentials {
                return ConsoleAssets.redirect("/enroll")
            }
        }
    }

    struct CSRFForm: Decodable {
        let csrf: String
    }

    func signOut<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        try await withForm(request, context) { (_: CSRFForm, token) in
            try? await services.identity.logout(token)
            return ConsoleAssets.redirect("/signed-out")
        }
    }

    // MARK: - Pages

    func home(_ request: Request) async -> Response {
        await guardedAsync(request) { token in
            let me = try await services.identity.me(token)
            let practices = try await services.agreements.reachablePractices(token)
            let owned = Set(me.memberships.filter { $0.role == "practice_owner" }.compactMap(\.practice))
            return page(
                "home",
                [
                    "name": me.displayName, "agencyAdmin": me.memberships.contains { $0.role == "agency_admin" },
                    "practices": practices.map { practice in
                        [
                            "id": id(practice.id), "name": practice.name,
                            "via": practice.via == "agreement" ? "through an agreement" : "member",
                            "owner": owned.contains(practice.id),
                        ] as [String: Any]
                    },
                ], request)
        }
    }

    func leads<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let query = request.uri.queryParameters
            let kind = query["kind"].map(String.init).flatMap { ["call", "form"].contains($0) ? $0 : nil }
            let campaign = query["campaign"].map(String.init).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) }
            let since = query["since"].flatMap { Self.day(String($0)) }
            let caller = query["caller"].map(String.init).flatMap { $0.isEmpty ? nil : String($0.prefix(40)) }
            var next: String?
            let found: [Lead]
            if let caller {
                // Search by caller number: the blind index, never a scan of decrypted numbers.
                found = try await services.leads.find(
                    token, practice: practice, callerNumber: caller, context: requestContext(request))
            } else {
                let page = try await services.leads.list(
                    token, practice: practice,
                    filter: LeadFilter(
                        since: since, kind: kind, campaign: campaign,
                        cursor: query["cursor"].map { String($0.prefix(200)) }, limit: 25),
                    context: requestContext(request))
                found = page.leads
                next = page.nextCursor
            }
            var nextQuery = URLComponents()
            nextQuery.queryItems = [
                kind.map { URLQueryItem(name: "kind", value: $0) },
                campaign.map { URLQueryItem(name: "campaign", value: $0) },
                query["since"].map { URLQueryItem(name: "since", value: String($0)) },
                next.map { URLQueryItem(name: "cursor", value: $0) },
            ].compactMap { $0 }
            return self.page(
                "leads",
                [
                    "practice": id(practice), "hasLeads": !found.isEmpty,
                    "kindCall": kind == "call", "kindForm": kind == "form", "campaign": campaign ?? "",
                    "since": query["since"].map(String.init) ?? "", "searching": caller != nil,
                    "next": next == nil
                        ? false : "/practices/\(id(practice))/leads?\(nextQuery.percentEncodedQuery ?? "")",
                    "leads": found.map { lead in
                        [
                            "id": id(lead.id), "kind": lead.kind, "when": Self.format(lead.occurredAt),
                            "caller": lead.callerName ?? lead.callerNumber ?? "—",
                            "source": lead.attribution.source ?? "—", "campaign": lead.attribution.campaign ?? "—",
                        ]
                    },
                ], request)
        }
    }

    /// A practice's dashboard: attribution and counts only, no PHI (no phi.read).
    func dashboard<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let until = Calendar(identifier: .gregorian).startOfDay(for: Date()).addingTimeInterval(86_400)
            let since = until.addingTimeInterval(-14 * 86_400)
            let rows = try await LeadReports(access: services.access, agreements: services.agreements).practice(
                token, practice: practice, since: since, until: until)
            var byDay: [Date: (leads: Int, calls: Int, forms: Int)] = [:]
            var byCampaign: [String: Int] = [:]
            for row in rows {
                let day = byDay[row.day] ?? (0, 0, 0)
                byDay[row.day] = (day.leads + row.leads, day.calls + row.calls, day.forms + row.forms)
                byCampaign["\(row.source ?? "direct") / \(row.campaign ?? "none")", default: 0] += row.leads
            }
            return page(
                "dashboard",
                [
                    "practice": id(practice),
                    "days": byDay.keys.sorted(by: >).map { day in
                        let counts = byDay[day] ?? (0, 0, 0)
                        return [
                            "day": Self.dayFormat(day), "leads": counts.leads, "calls": counts.calls,
                            "forms": counts.forms,
                        ]
                            as [String: Any]
                    },
                    "campaigns": byCampaign.sorted { $0.value > $1.value }.map {
                        ["name": $0.key, "leads": $0.value] as [String: Any]
                    },
                    "total": rows.reduce(0) { $0 + $1.leads },
                ], request)
        }
    }

    /// An agency admin's overview of every practice the agency has an agreement with: its status,
    /// leads this week (counts only) and agreements expiring within 30 days, flagged.
    func agencyOverview(_ request: Request) async -> Response {
        await guardedAsync(request) { token in
            let me = try await services.identity.me(token)
            let agencies = Set(me.memberships.filter { $0.role == "agency_admin" }.compactMap(\.agency))
            guard !agencies.isEmpty else { throw AccessError(.forbidden, "agency admins only") }
            let reachable = Dictionary(
                try await services.agreements.reachablePractices(token).map { ($0.id, $0.name) },
                uniquingKeysWith: { first, _ in first })
            let names = try await services.agreements.practiceNames(token)
            let reports = LeadReports(access: services.access, agreements: services.agreements)
            let weekAgo = Date().addingTimeInterval(-7 * 86_400)
            let soon = Date().addingTimeInterval(30 * 86_400)
            let agreements = try await services.agreements.list(token).filter { agencies.contains($0.agencyID) }
            // Leads this week, per practice in reach: one unit of work each (the gate binds one
            // practice per transaction), several at a time.
            let counted = agreements.filter { $0.inForce && reachable[$0.practiceID] != nil }.map(\.practiceID)
            var leadsThisWeek: [UUID: Int] = [:]
            try await withThrowingTaskGroup(of: (UUID, Int).self) { group in
                var pending = counted[...]
                func startNext() {
                    guard let practice = pending.popFirst() else { return }
                    group.addTask {
                        let rows = try await reports.practice(
                            token, practice: practice, since: weekAgo, until: Date().addingTimeInterval(60))
                        return (practice, rows.reduce(0) { $0 + $1.leads })
                    }
                }
                for _ in 0..<6 { startNext() }
                while let (practice, count) = try await group.next() {
                    leadsThisWeek[practice] = count
                    startNext()
                }
            }
            let rows: [[String: Any]] = agreements.map { agreement in
                [
                    "practice": id(agreement.practiceID),
                    "name": names[agreement.practiceID] ?? reachable[agreement.practiceID] ?? "Practice",
                    "reachable": reachable[agreement.practiceID] != nil, "status": agreement.status,
                    "leads": leadsThisWeek[agreement.practiceID].map { "\($0)" } ?? "—",
                    "expires": agreement.expiresAt.map(Self.format) ?? "never",
                    "expiring": agreement.inForce && (agreement.expiresAt.map { $0 < soon } ?? false),
                ]
            }
            guard let agency = agencies.first else { throw AccessError(.forbidden, "agency admins only") }
            let members = try await services.agreements.members(token, agency: agency)
            let active = agreements.filter(\.inForce)
            return page(
                "agency",
                [
                    "agreements": rows, "count": rows.count, "agency": id(agency),
                    "members": members.map { member in
                        [
                            "id": id(member.id), "email": member.email, "name": member.name,
                            "practices": active.map { agreement in
                                [
                                    "practice": id(agreement.practiceID),
                                    "name": names[agreement.practiceID] ?? "Practice",
                                    "assigned": member.practices.contains(agreement.practiceID),
                                ] as [String: Any]
                            },
                        ] as [String: Any]
                    },
                ], request)
        }
    }

    func account(_ request: Request, message: String? = nil, status: HTTPResponse.Status = .ok) async -> Response {
        await guardedAsync(request) { token in
            let me = try await services.identity.me(token)
            let sessions = try await services.identity.sessions(token)
            return page(
                "account",
                [
                    "name": me.displayName, "email": me.email, "message": message as Any,
                    "sessions": sessions.map { session in
                        [
                            "id": id(session.id), "since": Self.format(session.createdAt),
                            "seen": Self.format(session.lastSeenAt), "agent": session.userAgent ?? "unknown browser",
                            "current": session.current,
                        ] as [String: Any]
                    },
                ], request, status: status)
        }
    }

    func revokeSession<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (_: CSRFForm, token) in
            try await services.identity.revokeSession(token, sessionID: try uuid(context.parameters.get("session")))
            return ConsoleAssets.redirect("/account")
        }
    }

    struct PasswordForm: Decodable {
        let csrf: String
        let current: String
        let new: String
        let code: String
    }

    /// A password change: the current password and a code re-authenticate first; every session
    /// ends after, this one included.
    func changePassword<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: PasswordForm, token) in
            let fresh: SessionToken
            do {
                fresh = try await services.identity.reauthenticate(
                    token, password: form.current, code: form.code.filter(\.isNumber))
            } catch let error as AccessError where error.code == .invalidCredentials {
                return await account(
                    request, message: "Wrong password or code; nothing changed.", status: .unauthorized)
            }
            do {
                try await services.identity.changePassword(fresh, current: form.current, new: form.new)
            } catch let error as AccessError where error.code == .invalidInput {
                var response = await account(
                    request, message: "\(error.description). Nothing changed.", status: .badRequest)
                response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, fresh.value))
                return response
            }
            var response = ConsoleAssets.redirect("/sign-in")
            response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, "", maxAge: 0))
            return response
        }
    }

    /// Who can reach the practice through agreements, with each member's last access.
    func reach<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let rows = try await services.agreements.reach(token, practice: practice)
            return page(
                "reach",
                [
                    "practice": id(practice),
                    "rows": rows.map { row in
                        [
                            "agency": row.agency, "scopes": row.scopes.joined(separator: ", "),
                            "expires": row.expiresAt.map(Self.format) ?? "never",
                            "member": row.member ?? "no one assigned",
                            "last": row.lastAccess.map(Self.format) ?? (row.member == nil ? "—" : "never"),
                        ]
                    },
                ], request)
        }
    }

    /// A practice owner's audit trail and accounting of disclosures, newest first.
    func auditTrail<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let log = AuditLog(identity: services.identity)
            let action = request.uri.queryParameters["action"].flatMap { AuditAction(rawValue: String($0)) }
            let events = try await log.practiceEvents(
                token, practice: practice, filter: .init(action: action, limit: 200))
            let disclosures = try await log.disclosures(token, practice: practice)
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
                    "actions": AuditAction.allCases.map {
                        ["name": $0.rawValue, "selected": $0 == action] as [String: Any]
                    },
                ], request)
        }
    }

    func sourcesPage<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let sources = try await services.sources.list(token, practice: practice)
            return page(
                "sources",
                [
                    "practice": id(practice),
                    "sources": sources.map { source in
                        ["id": id(source.id), "kind": source.kind, "label": source.label, "disabled": source.disabled]
                            as [String: Any]
                    },
                ], request)
        }
    }

    struct SourceForm: Decodable {
        let csrf: String
        let kind: String?
        let label: String?
        let password: String?
        let code: String?
    }

    func createSource<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: SourceForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            return try await sensitive(
                request, token, form.password, form.code, action: "/practices/\(id(practice))/sources",
                what: "create a tracking source",
                hidden: [("kind", form.kind ?? ""), ("label", form.label ?? "")]
            ) { fresh in
                let (source, secret) = try await services.sources.create(
                    fresh, practice: practice, kind: form.kind ?? "", label: form.label ?? "")
                return page(
                    "secret",
                    ["practice": id(practice), "label": source.label, "source": id(source.id), "secret": secret],
                    request, token: fresh)
            }
        }
    }

    func rotateSource<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: SourceForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let source = try uuid(context.parameters.get("source"))
            return try await sensitive(
                request, token, form.password, form.code,
                action: "/practices/\(id(practice))/sources/\(id(source))/rotate", what: "rotate this source's secret",
                hidden: []
            ) { fresh in
                let secret = try await services.sources.rotateSecret(fresh, practice: practice, source: source)
                return page(
                    "secret", ["practice": id(practice), "label": "", "source": id(source), "secret": secret], request,
                    token: fresh)
            }
        }
    }

    func webhooksPage<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let endpoints = try await services.webhooks.list(token, practice: practice).filter(\.active)
            return page(
                "webhooks",
                [
                    "practice": id(practice),
                    "endpoints": endpoints.map { endpoint in
                        ["id": id(endpoint.id), "url": endpoint.url, "covered": endpoint.baaCovered] as [String: Any]
                    },
                ], request)
        }
    }

    struct WebhookForm: Decodable {
        let csrf: String
        let url: String?
        let covered: String?
        let password: String?
        let code: String?
    }

    /// A new endpoint; marking it covered by a BAA (it may then receive PHI) is sensitive.
    func createWebhook<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: WebhookForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let covered = form.covered == "on"
            return try await sensitive(
                request, token, form.password, form.code, action: "/practices/\(id(practice))/webhooks",
                what: "let this endpoint receive PHI",
                hidden: [("url", form.url ?? ""), ("covered", covered ? "on" : "")]
            ) { fresh in
                let (endpoint, secret) = try await services.webhooks.create(
                    fresh, practice: practice, url: form.url ?? "", baaCovered: covered,
                    context: requestContext(request))
                return page(
                    "secret",
                    [
                        "practice": id(practice), "label": endpoint.url, "source": id(endpoint.id), "secret": secret,
                        "webhook": true,
                    ],
                    request, token: fresh)
            }
        }
    }

    func deleteWebhook<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (_: CSRFForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            try await services.webhooks.remove(
                token, practice: practice, endpoint: try uuid(context.parameters.get("webhook")))
            return ConsoleAssets.redirect("/practices/\(id(practice))/webhooks")
        }
    }

    /// A sensitive action: with a password and code from the dialog, re-authenticates first;
    /// when the session is not fresh, shows the dialog (posting back to `action` with `hidden`).
    /// The response carries the renewed session cookie.
    func sensitive(
        _ request: Request, _ token: SessionToken, _ password: String?, _ code: String?, action: String, what: String,
        hidden: [(String, String)], _ body: (SessionToken) async throws -> Response
    ) async throws -> Response {
        func dialog(_ current: SessionToken, error: String?, status: HTTPResponse.Status) -> Response {
            page(
                "reauth",
                [
                    "action": action, "what": what, "error": error as Any,
                    "hidden": hidden.map { ["name": $0.0, "value": $0.1] },
                ], request, token: current, status: status)
        }
        var current = token
        var renewed = false
        if let password, !password.isEmpty, let code {
            do {
                current = try await services.identity.reauthenticate(
                    token, password: password, code: code.filter(\.isNumber))
                renewed = true
            } catch let error as AccessError where error.code == .invalidCredentials {
                return dialog(token, error: "Wrong password or code.", status: .unauthorized)
            }
        }
        var response: Response
        do {
            response = try await body(current)
        } catch let error as AccessError where error.code == .reauthenticationRequired {
            response = dialog(current, error: nil, status: .forbidden)
        }
        if renewed { response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, current.value)) }
        return response
    }

    struct ProposalForm: Decodable {
        let csrf: String
        let agency: String
        let practice: String
        let document: String
        let expires: String?
        let leadsRead: String?
        let recordingsListen: String?
        let leadsExport: String?
        let trackingManage: String?
        let password: String?
        let code: String?
    }

    /// An agency admin proposes an agreement to a practice (sensitive).
    func propose<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        try await withForm(request, context) { (form: ProposalForm, token) in
            let agency = try uuid(form.agency)
            let practice = try uuid(form.practice.trimmingCharacters(in: .whitespaces).lowercased())
            let document = form.document.trimmingCharacters(in: .whitespaces).lowercased()
            guard document.count == 64, let digest = Self.hexBytes(document) else {
                throw AccessError(.invalidInput, "the document's SHA-256 is 64 hexadecimal digits")
            }
            let scopes: [Scope] = [
                form.leadsRead != nil ? .leadsRead : nil, form.recordingsListen != nil ? .recordingsListen : nil,
                form.leadsExport != nil ? .leadsExport : nil, form.trackingManage != nil ? .trackingManage : nil,
            ].compactMap { $0 }
            guard !scopes.isEmpty else { throw AccessError(.invalidInput, "choose at least one scope") }
            let expires = try form.expires.flatMap { $0.isEmpty ? nil : $0 }.map { text in
                guard let day = Self.day(text) else {
                    throw AccessError(.invalidInput, "the expiry is a day, YYYY-MM-DD")
                }
                return day
            }
            var hidden: [(String, String)] = [
                ("agency", form.agency), ("practice", form.practice), ("document", form.document),
                ("expires", form.expires ?? ""),
            ]
            for (name, value) in [
                ("leadsRead", form.leadsRead), ("recordingsListen", form.recordingsListen),
                ("leadsExport", form.leadsExport), ("trackingManage", form.trackingManage),
            ] where value != nil {
                hidden.append((name, "on"))
            }
            return try await sensitive(
                request, token, form.password, form.code, action: "/agency/proposals", what: "propose this agreement",
                hidden: hidden
            ) { fresh in
                _ = try await services.agreements.propose(
                    fresh, agency: agency, practice: practice, scopes: scopes, effectiveAt: Date(), expiresAt: expires,
                    documentSHA256: digest)
                return ConsoleAssets.redirect("/agency")
            }
        }
    }

    struct AssignmentForm: Decodable {
        let csrf: String
        let agency: String
        let practice: String
        let member: String
        let assign: String
        let password: String?
        let code: String?
    }

    /// An agency admin assigns a member to a practice, or removes the assignment (sensitive).
    func assignment<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: AssignmentForm, token) in
            let agency = try uuid(form.agency)
            let practice = try uuid(form.practice)
            let member = try uuid(form.member)
            return try await sensitive(
                request, token, form.password, form.code, action: "/agency/assignments",
                what: form.assign == "yes" ? "assign this member" : "remove this assignment",
                hidden: [
                    ("agency", form.agency), ("practice", form.practice), ("member", form.member),
                    ("assign", form.assign),
                ]
            ) { fresh in
                if form.assign == "yes" {
                    try await services.agreements.assign(fresh, agency: agency, practice: practice, member: member)
                } else {
                    try await services.agreements.unassign(fresh, agency: agency, practice: practice, member: member)
                }
                return ConsoleAssets.redirect("/agency")
            }
        }
    }

    struct RedactForm: Decodable {
        let csrf: String
        let fields: String
    }

    /// An owner redacts a lead's PHI (the database checks the owner role and audits it).
    func redact<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        try await withForm(request, context) { (form: RedactForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let lead = try uuid(context.parameters.get("lead"))
            let fields = Set(form.fields.split(separator: ",").compactMap { RedactableField(rawValue: String($0)) })
            try await services.leads.redact(
                token, practice: practice, lead: lead, fields: fields, context: requestContext(request))
            return ConsoleAssets.redirect("/practices/\(id(practice))/leads/\(id(lead))")
        }
    }

    func lead<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let leadID = try uuid(context.parameters.get("lead"))
            let lead = try await services.leads.get(
                token, practice: practice, lead: leadID, context: requestContext(request))
            var fields: [[String: String]] = [
                ["name": "Kind", "value": lead.kind], ["name": "When", "value": Self.format(lead.occurredAt)],
                ["name": "Caller name", "value": lead.callerName ?? "—"],
                ["name": "Caller number", "value": lead.callerNumber ?? "—"],
                ["name": "Source", "value": lead.attribution.source ?? "—"],
                ["name": "Campaign", "value": lead.attribution.campaign ?? "—"],
            ]
            if let transcript = lead.transcript { fields.append(["name": "Transcript", "value": transcript]) }
            for (name, value) in (lead.formFields ?? [:]).sorted(by: { $0.key < $1.key }) {
                fields.append(["name": name, "value": value])
            }
            let owner = try await services.identity.me(token).memberships.contains {
                $0.role == "practice_owner" && $0.practice == practice
            }
            return page(
                "lead",
                [
                    "practice": id(practice), "lead": id(leadID), "fields": fields, "owner": owner,
                    "redacted": lead.redactedAt.map(Self.format) ?? false,
                    "recording": lead.recordingBytes == nil
                        ? false : "/v1/practices/\(id(practice))/leads/\(id(leadID))/recording",
                ], request)
        }
    }

    func agreements<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let all = try await services.agreements.list(token).filter { $0.practiceID == practice }
            return page(
                "agreements",
                [
                    "practice": id(practice),
                    "agreements": all.map { agreement in
                        [
                            "id": id(agreement.id), "status": agreement.status,
                            "scopes": agreement.scopes.map(\.rawValue).joined(separator: ", "),
                            "expires": agreement.expiresAt.map(Self.format) ?? "never",
                            "proposed": agreement.status == "proposed", "active": agreement.status == "active",
                        ] as [String: Any]
                    },
                ], request)
        }
    }

    struct DecisionForm: Decodable {
        let csrf: String
        let password: String?
        let code: String?
        let practice: String
    }

    /// Approve, decline or revoke: sensitive. When the session has not re-authenticated in the
    /// last five minutes, the password and code from the dialog re-authenticate it first.
    func decide<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        try await withForm(request, context) { (form: DecisionForm, token) in
            let agreement = try uuid(context.parameters.get("agreement"))
            let decision = context.parameters.get("decision") ?? ""
            guard ["approve", "decline", "revoke"].contains(decision) else { return notFound(request) }
            let practice = try uuid(form.practice)
            func act(_ token: SessionToken) async throws {
                switch decision {
                case "approve": try await services.agreements.approve(token, agreement: agreement)
                case "decline": try await services.agreements.decline(token, agreement: agreement)
                default: try await services.agreements.revoke(token, agreement: agreement)
                }
            }
            var current = token
            var renewed = false
            if let password = form.password, !password.isEmpty, let code = form.code {
                do {
                    current = try await services.identity.reauthenticate(
                        token, password: password, code: code.filter(\.isNumber))
                    renewed = true
                } catch let error as AccessError where error.code == .invalidCredentials {
                    return page(
                        "agreements-reauth",
                        [
                            "practice": id(practice), "agreement": id(agreement), "decision": decision,
                            "error": "Wrong password or code.",
                        ], request, token: token, status: .unauthorized)
                }
            }
            do {
                try await act(current)
            } catch let error as AccessError where error.code == .reauthenticationRequired {
                return page(
                    "agreements-reauth",
                    ["practice": id(practice), "agreement": id(agreement), "decision": decision], request,
                    token: current, status: .forbidden)
            }
            var response = ConsoleAssets.redirect("/practices/\(id(practice))/agreements")
            if renewed {
                response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, current.value))
            }
            return response
        }
    }

    // MARK: - Internals

    func page(
        _ template: String, _ values: [String: Any], _ request: Request, token: SessionToken? = nil,
        status: HTTPResponse.Status = .ok
    ) -> Response {
        var context = values
        if let token = token ?? sessionToken(request) {
            context["csrf"] = ConsoleSecurity.csrf(for: token)
            context["signedIn"] = true
        }
        context["idleSeconds"] = Int(services.identity.policy.idleTimeout.components.seconds)
        return assets.page(template, context, status: status)
    }

    func sessionToken(_ request: Request) -> SessionToken? {
        request.cookies[ConsoleSecurity.sessionCookie].flatMap { $0.value.isEmpty ? nil : SessionToken($0.value) }
    }

    /// Runs `body` with the session's token; turns refusals into pages.
    func guarded(_ request: Request, _ body: (SessionToken) throws -> Response) -> Response {
        guard let token = sessionToken(request) else { return ConsoleAssets.redirect("/sign-in") }
        do { return try body(token) } catch { return refusal(error, request) }
    }

    func guardedAsync(_ request: Request, _ body: (SessionToken) async throws -> Response) async -> Response {
        guard let token = sessionToken(request) else { return ConsoleAssets.redirect("/sign-in") }
        do { return try await body(token) } catch { return refusal(error, request) }
    }

    /// A form post: the session's CSRF token must come with it, or 403 and nothing changes.
    func withForm<Form: Decodable, Context: Hummingbird.RequestContext>(
        _ request: Request, _ context: Context, _ body: (Form, SessionToken) async throws -> Response
    ) async throws -> Response {
        guard let token = sessionToken(request) else { return ConsoleAssets.redirect("/sign-in") }
        guard let form: Form = try await decodeForm(request, context),
            let csrf = (form as? any CSRFCarrying)?.csrfToken,
            ConsoleSecurity.matches(csrf, ConsoleSecurity.csrf(for: token))
        else { return forbiddenForm() }
        do { return try await body(form, token) } catch { return refusal(error, request) }
    }

    func decodeForm<Form: Decodable, Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context)
        async throws
        -> Form?
    {
        let body = try await request.body.collect(upTo: 64 * 1024)
        return try? URLEncodedFormDecoder().decode(Form.self, from: String(buffer: body))
    }

    func forbiddenForm() -> Response {
        assets.page(
            "refusal",
            [
                "title": "This form has expired",
                "message": "Nothing was changed. Go back, reload the page and try again.",
            ],
            status: .forbidden)
    }

    func notFound(_ request: Request) -> Response {
        page("refusal", ["title": "Not found", "message": "There is nothing here."], request, status: .notFound)
    }

    /// A refusal as a page, with the API's problem types in mind; never PHI, never a trace.
    func refusal(_ error: any Error, _ request: Request) -> Response {
        guard let error = error as? AccessError else {
            if isDatabaseUnreachable(error) {
                var response = page(
                    "refusal",
                    ["title": "Enclave is unavailable", "message": "We cannot reach the database. Try again shortly."],
                    request, status: .serviceUnavailable)
                response.headers[.retryAfter] = "5"
                return response
            }
            return page(
                "refusal", ["title": "Something went wrong", "message": "Nothing was shown. Try again."], request,
                status: .internalServerError)
        }
        switch error.code {
        case .unauthenticated:
            var response = ConsoleAssets.redirect("/sign-in")
            response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, "", maxAge: 0))
            return response
        case .mfaRequired: return ConsoleAssets.redirect("/sign-in/code")
        case .forbidden:
            return page(
                "refusal",
                [
                    "title": "Access to this practice has ended",
                    "message":
                        "You no longer have access to this practice's data. Ask its owner if you think this is wrong.",
                ],
                request, status: .forbidden)
        case .notFound: return notFound(request)
        case .invalidInput:
            return page(
                "refusal", ["title": "That did not work", "message": error.description], request, status: .badRequest)
        default:
            return page(
                "refusal", ["title": "That did not work", "message": error.description], request, status: .conflict)
        }
    }

    func staticFile(_ buffer: ByteBuffer, _ type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        ConsoleSecurity.apply(to: &headers)
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: buffer))
    }

    func uuid(_ text: String?) throws -> UUID {
        guard let text, text.count == 36, let id = UUID(uuidString: text) else {
            throw AccessError(.notFound, "no such page")
        }
        return id
    }

    func id(_ uuid: UUID) -> String { uuid.uuidString.lowercased() }

    func client(_ request: Request) -> ClientInfo {
        ClientInfo(userAgent: request.headers[.userAgent])
    }

    func requestContext(_ request: Request) -> Enclave.RequestContext {
        Enclave.RequestContext(client: client(request))
    }

    /// The bytes of lowercase or uppercase hex digits, or nil.
    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text)
        guard digits.count % 2 == 0 else { return nil }
        return stride(from: 0, to: digits.count, by: 2).reduce(into: [UInt8]?([])) { bytes, index in
            guard let byte = UInt8(String(digits[index...index + 1]), radix: 16) else { return bytes = nil }
            bytes?.append(byte)
        }
    }

    /// A formatter for `pattern`, in UTC, independent of the server's locale.
    static func utc(_ pattern: String) -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = pattern
        return formatter
    }

    static func dayFormat(_ date: Date) -> String { utc("yyyy-MM-dd").string(from: date) }

    /// A `yyyy-MM-dd` day at 00:00 UTC, or nil.
    static func day(_ text: String) -> Date? { utc("yyyy-MM-dd").date(from: text) }

    static func format(_ date: Date) -> String { utc("yyyy-MM-dd HH:mm 'UTC'").string(from: date) }
}

/// Forms that carry the CSRF token.
protocol CSRFCarrying {
    var csrfToken: String { get }
}

extension Console.CodeForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.CSRFForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.DecisionForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.RedactForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.PasswordForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.SourceForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.WebhookForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.ProposalForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.AssignmentForm: CSRFCarrying { var csrfToken: String { csrf } }
