import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

/// An agency admin's pages: the overview, proposals and assignments.
extension Console {
    /// An agency admin's overview of every practice the agency has an agreement with: its status,
    /// leads in the last seven UTC days (counts only) and agreements expiring within 30 days, flagged.
    func agencyOverview(_ request: Request) async -> Response {
        await guardedAsync(request) { token in
            let me = try await services.identity.me(token)
            let agencies = Set(me.memberships.filter { $0.role == "agency_admin" }.compactMap(\.agency))
            guard !agencies.isEmpty else { throw AccessError(.forbidden, "agency admins only") }
            let reachable = Dictionary(
                try await services.agreements.reachablePractices(token).map { ($0.id, $0.name) },
                uniquingKeysWith: { first, _ in first })
            let names = try await services.agreements.practiceNames(token)
            // The last seven UTC days, today included: whole days, which the figures' rollup
            // answers without counting leads one by one.
            let day = 86_400.0
            let tomorrow = Date(timeIntervalSince1970: ((Date().timeIntervalSince1970 / day).rounded(.down) + 1) * day)
            let weekAgo = tomorrow.addingTimeInterval(-7 * day)
            let soon = Date().addingTimeInterval(30 * 86_400)
            let all = try await services.agreements.list(token).filter { agencies.contains($0.agencyID) }
                .sorted {
                    (names[$0.practiceID] ?? "", $0.practiceID.uuidString) < (
                        names[$1.practiceID] ?? "", $1.practiceID.uuidString
                    )
                }
            // A page of agreements (an agency may have thousands), found by practice name.
            let (agreements, window) = ListWindow(request).apply(
                all, name: { names[$0.practiceID] ?? "" }, path: "/agency")
            // Leads of those days for every practice in force, assigned to this admin or not: one
            // query per agency, counts only.
            var leadsThisWeek: [UUID: Int] = [:]
            for agency in agencies {
                for (practice, figures) in try await services.reports.agency(
                    token, agency: agency, since: weekAgo, until: tomorrow)
                {
                    leadsThisWeek[practice] = figures.leads
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
            let alerts = try await agencyAlerts(token, agency: agency)
            return page(
                "agency",
                [
                    "agreements": rows, "count": all.count, "agency": id(agency), "alerts": alerts, "window": window,
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
}
