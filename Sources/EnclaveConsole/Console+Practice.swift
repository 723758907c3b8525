import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

/// A practice's pages: home, dashboard, leads and a lead, agreements, who can reach it. The audit
/// trail is in Console+Audit, settings in Console+Settings, value and ROI in Console+Value.
extension Console {
    func home(_ request: Request) async -> Response {
        await guardedAsync(request) { token in
            let me = try await services.identity.me(token)
            // A page of them (an agency's admin may reach thousands), found by name, paged in
            // the database; a page past the end shows the last.
            let window = ListWindow(request)
            var (practices, matching) = try await services.agreements.reachablePractices(
                token, filter: window.filter, offset: window.offset, limit: ListWindow.size)
            var current = window.page
            if practices.isEmpty, matching == 0, window.page > 1 {
                matching = try await services.agreements.reachablePractices(
                    token, filter: window.filter, offset: 0, limit: 1
                ).matching
                current = ListWindow.pages(matching)
                practices = try await services.agreements.reachablePractices(
                    token, filter: window.filter, offset: (current - 1) * ListWindow.size, limit: ListWindow.size
                ).practices
            }
            let all =
                window.filter.isEmpty
                ? matching
                : try await services.agreements.reachablePractices(token, filter: "", offset: 0, limit: 1).matching
            let owned = Set(me.memberships.filter { $0.role == "practice_owner" }.compactMap(\.practice))
            // Emergency accesses to any practice the owner owns, not yet acknowledged.
            let banners = owned.isEmpty ? [] : await breakGlassBanner(token, practice: nil)
            let responder = (try? await services.compliance.responderBreakGlass(token)) != nil
            return page(
                "home",
                [
                    "name": me.displayName, "agencyAdmin": me.memberships.contains { $0.role == "agency_admin" },
                    "breakGlass": banners, "responder": responder,
                    "window": window.values(
                        page: current, shown: practices.count, matching: matching, all: all, path: "/home"),
                    "practices": practices.map { practice in
                        [
                            "id": id(practice.id), "name": practice.name,
                            "via": practice.via == "agreement" ? "through an agreement" : "member",
                            "owner": owned.contains(practice.id), "member": practice.via != "agreement",
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
            let source = query["source"].map(String.init).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) }
            let since = query["since"].flatMap { Self.day(String($0)) }
            let caller = query["caller"].map(String.init).flatMap { $0.isEmpty ? nil : String($0.prefix(40)) }
            let tag = query["tag"].map(String.init).flatMap { $0.isEmpty ? nil : String($0.prefix(40)) }
            let mentions = query["mentions"].map(String.init).flatMap { $0.isEmpty ? nil : String($0.prefix(200)) }
            let tags = try await services.keywords.list(token, practice: practice, context: requestContext(request))
                .map(\.name)
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
                        since: since, kind: kind, source: source, campaign: campaign, mentions: mentions, tag: tag,
                        cursor: query["cursor"].map { String($0.prefix(200)) }, limit: 25),
                    context: requestContext(request))
                found = page.leads
                next = page.nextCursor
            }
            var nextQuery = URLComponents()
            nextQuery.queryItems = [
                kind.map { URLQueryItem(name: "kind", value: $0) },
                source.map { URLQueryItem(name: "source", value: $0) },
                campaign.map { URLQueryItem(name: "campaign", value: $0) },
                query["since"].map { URLQueryItem(name: "since", value: String($0)) },
                tag.map { URLQueryItem(name: "tag", value: $0) },
                mentions.map { URLQueryItem(name: "mentions", value: $0) },
                next.map { URLQueryItem(name: "cursor", value: $0) },
            ].compactMap { $0 }
            return self.page(
                "leads",
                [
                    "practice": id(practice), "hasLeads": !found.isEmpty,
                    "kindCall": kind == "call", "kindForm": kind == "form", "campaign": campaign ?? "",
                    "source": source ?? "",
                    "since": query["since"].map(String.init) ?? "", "searching": caller != nil,
                    "mentions": mentions ?? "", "hasTags": !tags.isEmpty,
                    "tags": tags.map { ["name": $0, "selected": $0 == tag] as [String: Any] },
                    "next": next == nil
                        ? false : "/practices/\(id(practice))/leads?\(nextQuery.percentEncodedQuery ?? "")",
                    "leads": found.map { lead in
                        [
                            "id": id(lead.id), "kind": lead.kind, "when": Self.format(lead.occurredAt),
                            "caller": lead.callerName ?? lead.callerNumber ?? "—",
                            "source": lead.attribution.source ?? "—", "campaign": lead.attribution.campaign ?? "—",
                            "tags": lead.insights?.tags.joined(separator: ", ") ?? "",
                        ]
                    },
                ], request)
        }
    }

    /// A practice's dashboard: attribution and counts only, no PHI (no phi.read). The last 14
    /// days, UTC: each day's leads (answered and missed calls, forms), and each source and
    /// campaign's leads per day.
    func dashboard<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
            let until = calendar.startOfDay(for: Date()).addingTimeInterval(86_400)
            let days = (1...14).map { until.addingTimeInterval(-Double($0) * 86_400) }.reversed()
            let rows = try await services.reports.practice(
                token, practice: practice, since: days.first ?? until, until: until)
            let summary = DashboardSummary(rows: rows, days: Array(days))
            let banners = await breakGlassBanner(token, practice: practice)
            // Calls each keyword set tagged per day: counts from the tag tokens, no transcript read.
            let tagged = try await services.keywords.tagCounts(
                token, practice: practice, since: days.first ?? until, until: until, context: requestContext(request))
            let tagNames = Array(Set(tagged.map(\.tag))).sorted()
            return page(
                "dashboard",
                [
                    "practice": id(practice), "breakGlass": banners, "total": summary.total.leads,
                    "calls": summary.total.calls,
                    "answered": summary.total.answered, "missed": summary.total.missed, "forms": summary.total.forms,
                    "chart": summary.chart, "chartLabel": summary.chartLabel,
                    "days": summary.days.reversed().map { day in
                        [
                            "day": Self.dayFormat(day.day), "leads": day.counts.leads, "calls": day.counts.calls,
                            "answered": day.counts.answered, "missed": day.counts.missed, "forms": day.counts.forms,
                        ] as [String: Any]
                    },
                    "hasCampaigns": !summary.campaigns.isEmpty,
                    "dayHeads": days.map { ["day": Self.utc("MM-dd").string(from: $0)] },
                    "campaigns": summary.campaigns.map { campaign in
                        [
                            "name": campaign.name, "total": campaign.total,
                            "perDay": campaign.perDay.map { ["count": $0] },
                        ] as [String: Any]
                    },
                    "hasTags": !tagNames.isEmpty,
                    "tags": tagNames.map { tag in
                        let perDay = days.map { day in
                            tagged.first { $0.tag == tag && $0.day == day }?.calls ?? 0
                        }
                        return [
                            "name": tag, "perDay": perDay.map { ["count": $0] }, "total": perDay.reduce(0, +),
                        ] as [String: Any]
                    },
                ], request)
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
            for (name, value) in (lead.formFields ?? [:]).sorted(by: { $0.key < $1.key }) {
                fields.append(["name": name, "value": value])
            }
            let owner = try await services.identity.me(token).memberships.contains {
                $0.role == "practice_owner" && $0.practice == practice
            }
            // Marking is the owner's, or agency staff's whose agreement in force grants it.
            var qualifies = owner
            if !owner {
                qualifies = try await services.agreements.list(token).contains {
                    $0.practiceID == practice && $0.inForce && $0.scopes.contains(.leadsQualify)
                }
            }
            return page(
                "lead",
                [
                    "practice": id(practice), "lead": id(leadID), "fields": fields, "owner": owner,
                    "qualifies": qualifies, "qualification": lead.qualification ?? "not marked",
                    "value": lead.valueCents.map { Self.dollars($0) } ?? "",
                    // Mustache takes an empty string as true: a missing value is false.
                    "worth": lead.valueCents.map { Self.dollars($0) as Any } ?? false,
                    // Until a person marks it, the transcript's suggestion is preselected.
                    "choices": LeadValue.Qualification.allCases.map {
                        [
                            "name": $0.rawValue,
                            "selected": $0.rawValue == (lead.qualification ?? lead.insights?.suggestion),
                        ] as [String: Any]
                    },
                    "redacted": lead.redactedAt.map(Self.format) ?? false,
                    "transcript": Self.transcript(lead),
                    "recording": lead.recordingBytes == nil
                        ? false : "/v1/practices/\(id(practice))/leads/\(id(leadID))/recording",
                ], request)
        }
    }

    /// The lead page's transcript section: the full transcript for those who may read it (with the
    /// redacted form agency staff see), the redacted one for the others; the tags, the score and
    /// its suggestion; or why there is none. False when the lead has neither a transcript nor a
    /// recording.
    static func transcript(_ lead: Lead) -> Any {
        var section: [String: Any] = [:]
        if let full = lead.transcript {
            section["full"] = full
            section["redactedCopy"] = lead.redactedTranscript ?? false
        } else if let redacted = lead.redactedTranscript {
            section["redactedOnly"] = redacted
        }
        if let insights = lead.insights {
            section["insights"] = [
                "tags": insights.tags.isEmpty ? "none" : insights.tags.joined(separator: ", "),
                "score": insights.score, "suggestion": insights.suggestion,
            ]
        }
        if section.isEmpty {
            if lead.transcriptStatus == "unreadable" {
                section["note"] = "The recording is in a format the transcriber does not read (WAV is read)."
            } else if lead.recordingBytes != nil {
                section["note"] =
                    "Not transcribed yet: the transcription worker makes it on the platform's own machines."
            } else {
                return false
            }
        }
        return section
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
                            "id": id(agreement.id), "status": agreement.status, "agency": agreement.agencyName,
                            "document": agreement.documentSHA256.map { String(format: "%02x", $0) }.joined(),
                            "effective": Self.format(agreement.effectiveAt),
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

    /// Approve, decline or revoke: sensitive, through the re-authentication dialog when the
    /// session has not re-authenticated in the last five minutes.
    func decide<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws -> Response {
        try await withForm(request, context) { (form: DecisionForm, token) in
            let agreement = try uuid(context.parameters.get("agreement"))
            let decision = context.parameters.get("decision") ?? ""
            guard ["approve", "decline", "revoke"].contains(decision) else { return notFound(request) }
            let practice = try uuid(form.practice)
            return try await sensitive(
                request, token, form.password, form.code, action: "/agreements/\(id(agreement))/\(decision)",
                what: "\(decision) this agreement", hidden: [("practice", id(practice))]
            ) { fresh in
                switch decision {
                case "approve": try await services.agreements.approve(fresh, agreement: agreement)
                case "decline": try await services.agreements.decline(fresh, agreement: agreement)
                default: try await services.agreements.revoke(fresh, agreement: agreement)
                }
                return ConsoleAssets.redirect("/practices/\(id(practice))/agreements")
            }
        }
    }
}
