import Enclave
import Foundation
import Sealing

/// A synthetic user signed in with TOTP enrolled and confirmed: a session that reaches PHI.
public struct SignedInUser: Sendable {
    /// The session.
    public let token: SessionToken
    /// The TOTP secret (Base32), to make later codes with.
    public let totpSecret: String

    /// The TOTP code at `date`.
    public func code(at date: Date) throws -> String {
        try Self.code(secret: totpSecret, at: date)
    }

    /// The TOTP code of a Base32 `secret` at `date`, as an authenticator app shows it.
    public static func code(secret: String, at date: Date) throws -> String {
        guard let bytes = Base32.decode(secret) else { throw TestSetupError("the TOTP secret is not Base32") }
        return try TOTP(secret: SecretBytes(copying: bytes)).code(at: date)
    }
}

extension IdentityService {
    /// Signs in with a password, enrolls TOTP and confirms the code of `date`, as a person with
    /// an authenticator app would. The default is the previous step, so the current code is
    /// still unused for a re-authentication.
    public func signInEnrollingMFA(
        email: String, password: String, at date: Date = Date().addingTimeInterval(-30)
    ) async throws -> SignedInUser {
        let login = try await login(email: email, password: password)
        let enrollment = try await beginMFAEnrollment(login.token)
        let user = SignedInUser(token: login.token, totpSecret: enrollment.secret)
        try await confirmMFA(login.token, code: try user.code(at: date), at: date)
        return user
    }

    /// Signs in with MFA as `signInEnrollingMFA` does at `date`, then re-authenticates with the
    /// code of the step after: a session that may take sensitive actions for five minutes. The
    /// default leaves the current step's code unused.
    public func signInFresh(
        email: String, password: String, at date: Date = Date().addingTimeInterval(-60)
    ) async throws -> SignedInUser {
        let user = try await signInEnrollingMFA(email: email, password: password, at: date)
        let later = date.addingTimeInterval(30)
        let token = try await reauthenticate(user.token, password: password, code: try user.code(at: later), at: later)
        return SignedInUser(token: token, totpSecret: user.totpSecret)
    }
}
