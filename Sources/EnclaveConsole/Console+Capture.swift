import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// Setting capture up from the sources page: a Twilio source, a pool of numbers, a web property.
/// Each is a practice setting, behind the re-authentication dialog.
extension Console {
    struct TwilioForm: Decodable {
        let csrf: String
        let label: String?
        let account: String?
        let token: String?
        let forward: String?
        let announce: String?
        let password: String?
        let code: String?
    }

    func createTwilio<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: TwilioForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            // The auth token rides along in the dialog's hidden fields only as far as this page.
            return try await sensitive(
                request, token, form.password, form.code, action: "/practices/\(id(practice))/sources/twilio",
                what: "add a Twilio source",
                hidden: [
                    ("label", form.label ?? ""), ("account", form.account ?? ""), ("token", form.token ?? ""),
                    ("forward", form.forward ?? ""), ("announce", form.announce ?? ""),
                ]
            ) { fresh in
                _ = try await services.sources.createTwilio(
                    fresh, practice: practice, label: form.label ?? "", trackingNumber: nil,
                    twilio: TwilioSettings(
                        accountSID: form.account ?? "", authToken: form.token ?? "", forwardTo: form.forward ?? "",
                        announceRecording: form.announce == "on"))
                return ConsoleAssets.redirect("/practices/\(id(practice))/sources")
            }
        }
    }

    struct NumbersForm: Decodable {
        let csrf: String
        let numbers: String?
        let password: String?
        let code: String?
    }

    func addNumbers<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: NumbersForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let source = try uuid(context.parameters.get("source"))
            let numbers = (form.numbers ?? "").split(whereSeparator: { $0.isNewline || $0 == "," })
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return try await sensitive(
                request, token, form.password, form.code,
                action: "/practices/\(id(practice))/sources/\(id(source))/numbers", what: "add pool numbers",
                hidden: [("numbers", numbers.joined(separator: ","))]
            ) { fresh in
                try await services.sources.addNumbers(fresh, practice: practice, source: source, numbers: numbers)
                return ConsoleAssets.redirect("/practices/\(id(practice))/sources")
            }
        }
    }

    struct PropertyForm: Decodable {
        let csrf: String
        let name: String?
        let origins: String?
        let calls: String?
        let forms: String?
        let main: String?
        let password: String?
        let code: String?
    }

    func createProperty<Context: Hummingbird.RequestContext>(_ request: Request, _ context: Context) async throws
        -> Response
    {
        try await withForm(request, context) { (form: PropertyForm, token) in
            let practice = try uuid(context.parameters.get("practice"))
            let origins = (form.origins ?? "").split(whereSeparator: { $0.isNewline || $0 == "," })
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return try await sensitive(
                request, token, form.password, form.code, action: "/practices/\(id(practice))/web-properties",
                what: "add a website",
                hidden: [
                    ("name", form.name ?? ""), ("origins", origins.joined(separator: ",")), ("calls", form.calls ?? ""),
                    ("forms", form.forms ?? ""), ("main", form.main ?? ""),
                ]
            ) { fresh in
                _ = try await services.sources.createWebProperty(
                    fresh, practice: practice, name: form.name ?? "", origins: origins,
                    callSource: try form.calls.flatMap { $0.isEmpty ? nil : try uuid($0) },
                    formSource: try form.forms.flatMap { $0.isEmpty ? nil : try uuid($0) },
                    mainNumber: form.main.flatMap { $0.isEmpty ? nil : $0 })
                return ConsoleAssets.redirect("/practices/\(id(practice))/sources")
            }
        }
    }
}
