import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import Sealing

/// The console's cookies, its CSRF tokens and the headers every page carries.
enum ConsoleSecurity {
    /// The session token's cookie: `__Host-` (Secure, Path=/, no Domain), HttpOnly, SameSite=Strict.
    static let sessionCookie = "__Host-enclave"
    /// Before sign-in, the double-submit CSRF token of the sign-in form.
    static let formCookie = "__Host-enclave-form"

    /// Same origin only: no inline script or style, nothing from another origin, no framing.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
        + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    /// The CSRF token of a signed-in session: a digest of its token, which the page's scripts
    /// never see (HttpOnly), so another origin cannot compute it.
    static func csrf(for token: SessionToken) -> String {
        SHA256.hexDigest(Array("enclave.console.csrf.\(token.value)".utf8))
    }

    static func cookie(_ name: String, _ value: String, maxAge: Int? = nil) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: true, httpOnly: true, sameSite: .strict)
    }

    /// Constant-time comparison of two CSRF tokens.
    static func matches(_ a: String?, _ b: String?) -> Bool {
        guard let a, let b, a.utf8.count == b.utf8.count, !a.isEmpty else { return false }
        return HMAC.constantTimeEqual(Array(a.utf8), Array(b.utf8))
    }

    /// The headers of every console response.
    static func apply(to headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.cacheControl] = "no-store"
        headers[.xFrameOptions] = "DENY"
        headers[.referrerPolicy] = "no-referrer"
        headers[.contentTypeOptions] = "nosniff"
    }
}

extension HTTPField.Name {
    static let xFrameOptions = consoleConstant("X-Frame-Options")
    static let referrerPolicy = consoleConstant("Referrer-Policy")
    static let contentTypeOptions = consoleConstant("X-Content-Type-Options")

    /// A header name written in this file; the names above are valid, so this never fails.
    private static func consoleConstant(_ name: String) -> HTTPField.Name {
        guard let field = HTTPField.Name(name) else { preconditionFailure("invalid header name \(name)") }
        return field
    }
}

/// The templates and static files, loaded once from the target's resources.
struct ConsoleAssets: Sendable {
    let library: MustacheLibrary
    let stylesheet: ByteBuffer
    let script: ByteBuffer

    static func load() async throws -> ConsoleAssets {
        guard let root = Bundle.module.resourceURL else {
            throw ConfigurationError("the console's resources are missing")
        }
        let library = try await MustacheLibrary(directory: root.appendingPathComponent("templates").path)
        func file(_ name: String) throws -> ByteBuffer {
            ByteBuffer(bytes: try Data(contentsOf: root.appendingPathComponent("static/\(name)")))
        }
        return ConsoleAssets(library: library, stylesheet: try file("console.css"), script: try file("console.js"))
    }

    /// A complete page: `template` inside the layout, with the console's headers.
    func page(_ template: String, _ values: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        var context = Self.withoutAbsentValues(values)
        context["year"] = Calendar(identifier: .gregorian).component(.year, from: Date())
        let html = library.render(context, withTemplate: template) ?? "<!doctype html><title>Enclave</title>"
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        ConsoleSecurity.apply(to: &headers)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// `values` without the optionals that hold nothing, at any depth. Mustache renders an
    /// `Optional<T>.none` stored as `Any` as the text "nil" (a sign-in page once showed it as its
    /// error); a missing key renders as nothing and is false in a section.
    static func withoutAbsentValues(_ values: [String: Any]) -> [String: Any] {
        values.compactMapValues(present)
    }

    private static func present(_ value: Any) -> Any? {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return nil }
            return present(wrapped)
        }
        if let dictionary = value as? [String: Any] { return withoutAbsentValues(dictionary) }
        if let array = value as? [Any] { return array.compactMap(present) }
        return value
    }

    /// A redirect after a form (303), with the console's headers.
    static func redirect(_ location: String) -> Response {
        var response = Response.redirect(to: location, type: .normal)
        ConsoleSecurity.apply(to: &response.headers)
        return response
    }
}
