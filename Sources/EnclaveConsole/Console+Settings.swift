import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// A practice's settings: tracking sources (and their secrets, shown once) and webhooks.
/// Capture's setup (Twilio sources, pools, websites) is in Console+Capture.
extension Console {
    func sourcesPage<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let sources = try await services.sources.list(token, practice: practice)
            let pools = try await services.sources.poolNumbers(token, practice: practice)
            let properties = try await services.sources.webProperties(token, practice: practice)
            let base = request.head.authority.map { "https://" + $0 } ?? ""
            let label = { (source: UUID?) in source.flatMap { id in sources.first { $0.id == id }?.label } ?? "none" }
            return page(
                "sources",
                [
                    "practice": id(practice),
                    "callSources": sources.filter { $0.kind == "call" }.map { ["id": id($0.id), "label": $0.label] },
                    "formSources": sources.filter { $0.kind == "form" }.map { ["id": id($0.id), "label": $0.label] },
                    "properties": properties.map { property in
                        [
                            "name": property.name, "origins": property.origins.joined(separator: ", "),
                            "calls": label(property.callSource), "forms": label(property.formSource),
                            "script": #"<script src="\#(base)/v1/capture/snippet/\#(property.publicKey).js"></script>"#,
                        ]
                    },
                    "sources": sources.map { source in
                        [
                            "id": id(source.id), "kind": source.kind, "label": source.label,
                            "disabled": source.disabled,
                            "twilio": source.provider == "twilio", "call": source.kind == "call",
                            "pool": pools[source.id].map { $0.joined(separator: ", ") as Any } ?? false,
                        ]
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

    /// A practice's keyword sets: anyone who reads its leads sees them; its owners, and agency
    /// staff with tracking.manage, change them (the database decides).
    func keywordsPage<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async -> Response {
        await guardedAsync(request) { token in
            let practice = try uuid(context.parameters.get("practice"))
            let sets = try await services.keywords.list(token, practice: practice, context: requestContext(request))
            return page(
                "keywords",
                [
                    "practice": id(practice), "hasSets": !sets.isEmpty,
                    "sets": sets.map { set in
                        [
                            "id": id(set.id), "name": set.name, "phrases": set.phrases.joined(separator: ", "),
                            "weight": set.weight,
                        ] as [String: Any]
                    },
                ], request)
        }
    }

    struct KeywordSetForm: Decodable {
        let csrf: String
        let name: String?
        let phrases: String?
        let weight: String?
    }

    /// Saves a keyword set: phrases one per line (or separated by commas).
    func saveKeywordSet<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: KeywordSetForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let phrases = (form.phrases ?? "").split(whereSeparator: { $0 == "\n" || $0 == "," || $0 == "\r" })
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard let weight = Int((form.weight ?? "1").trimmingCharacters(in: .whitespaces)) else {
                throw AccessError(.invalidInput, "a keyword set's weight is -10 to 10")
            }
            _ = try await services.keywords.save(
                token, practice: practice, name: (form.name ?? "").trimmingCharacters(in: .whitespaces),
                phrases: phrases, weight: weight, context: requestContext(request))
            return ConsoleAssets.redirect("/practices/\(id(practice))/keywords")
        }
    }

    func deleteKeywordSet<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (_: CSRFForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            try await services.keywords.delete(
                token, practice: practice, keywordSet: try uuid(context.parameters.get("set")),
                context: requestContext(request))
            return ConsoleAssets.redirect("/practices/\(id(practice))/keywords")
        }
    }
}
extension Console.KeywordSetForm: CSRFCarrying { var csrfToken: String { csrf } }
