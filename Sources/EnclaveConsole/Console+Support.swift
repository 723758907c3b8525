import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

/// What every page shares: rendering, the session, forms and their CSRF tokens, the step-up
/// re-authentication of sensitive actions, refusals as pages, formats.
extension Console {
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

    func requestContext(_ request: Request) -> Enclave.RequestContext {
        Enclave.RequestContext(client: client())
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
