import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

/// Signing in and out, MFA enrollment, and the account page (sessions, password).
extension Console {
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
                email: form.email, password: form.password, client: client())
            var response = ConsoleAssets.redirect(login.mfaEnrolled ? "/sign-in/code" : "/enroll")
            response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, login.token.value))
            return response
        } catch let error as AccessError where error.code == .throttled {
            return signInPage(request, error: "Too many failed sign-ins. Try again later.", status: .tooManyRequests)
        } catch is PasswordWork.Busy {
            var response = signInPage(
                request, error: "The service is busy. Try again in a few seconds.", status: .serviceUnavailable)
            response.headers[.retryAfter] = "5"
            return response
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
            } catch let error as AccessError where error.code == .throttled {
                // Too many wrong codes: held back for a while, or locked until an operator unlocks.
                return page(
                    "code", ["error": error.message.prefix(1).uppercased() + error.message.dropFirst() + "."],
                    request, status: .tooManyRequests)
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
}
