import Foundation
import Postgres
import Sealing

/// Sign-in, TOTP, re-authentication and sessions, as the service role.
///
/// Passwords are checked without the database ever seeing them or storing anything that lets
/// one sign in: the service derives scrypt(password, salt) and the database compares its SHA-256.
/// Checking a TOTP code and re-authenticating run on `authPool`, as `enclave_auth`, the only
/// role that may mark a session MFA-verified or fresh: the service role cannot assert a step.
public struct IdentityService: Sendable {
    /// Session lifetimes and password cost.
    public struct Policy: Sendable {
        public var idleTimeout: Duration
        public var absoluteTimeout: Duration
        public var passwordCost: PasswordHasher.Cost
        /// TOTP steps accepted either side of now.
        public var totpWindow: Int

        public init(
            idleTimeout: Duration = .seconds(15 * 60),
            absoluteTimeout: Duration = .seconds(12 * 3600),
            passwordCost: PasswordHasher.Cost = .owasp,
            totpWindow: Int = 1
        ) {
            self.idleTimeout = idleTimeout
            self.absoluteTimeout = absoluteTimeout
            self.passwordCost = passwordCost
            self.totpWindow = totpWindow
        }
    }

    /// A successful sign-in.
    public struct Login: Sendable {
        public let token: SessionToken
        public let sessionID: UUID
        public let userID: UUID
        /// Whether the user has TOTP set up: if so, `verifyMFA` next; if not, enroll.
        public let mfaEnrolled: Bool
    }

    /// A TOTP secret to show once, for the user's authenticator app.
    public struct MFAEnrollment: Sendable {
        public let secret: String
        public let uri: String
    }

    /// One of the caller's sessions.
    public struct SessionInfo: Sendable, Equatable {
        public let id: UUID
        public let createdAt: Date
        public let lastSeenAt: Date
        public let clientAddress: String?
        public let userAgent: String?
        public let current: Bool
    }

    public let pool: ConnectionPool
    /// The authentication role's pool (`enclave_auth`).
    public let authPool: ConnectionPool
    public let masterKeys: any MasterKeyProvider
    public let masterKeyVersion: UInt32
    public let policy: Policy
    /// Every password derivation goes through it: bounded, off the cooperative pool.
    public let passwordWork: PasswordWork

    public init(
        pool: ConnectionPool, authPool: ConnectionPool, masterKeys: any MasterKeyProvider, masterKeyVersion: UInt32,
        policy: Policy = Policy(), passwordWork: PasswordWork = PasswordWork()
    ) {
        self.pool = pool
        self.authPool = authPool
        self.masterKeys = masterKeys
        self.masterKeyVersion = masterKeyVersion
        self.policy = policy
        self.passwordWork = passwordWork
    }

    var hasher: PasswordHasher { PasswordHasher(cost: policy.passwordCost) }

    /// Signs in with email and password.
    ///
    /// - Throws: `.invalidCredentials` for a wrong password, an unknown email or a disabled user
    ///   alike; `.throttled` after too many failures, whether or not the email exists.
    public func login(email: String, password: String, client: ClientInfo = ClientInfo()) async throws -> Login {
        guard email.utf8.count <= 320, password.utf8.count <= 1024 else {
            throw AccessError(.invalidCredentials, "wrong email or password")
        }
        let token = try SessionToken.generate()
        // A hashing slot before anything else: when every one is taken, a flood of sign-ins is
        // refused (503) without a database round trip. Then the throttles: a throttled attempt
        // costs no scrypt.
        let slot = try passwordWork.reserve()
        let before = try await pool.query(
            """
            select enclave_private.login_parameters($1, $2) as parameters,
                   enclave_private.login_throttled($1, $3::text::inet) as until
            """, [email, hasher.defaultParameters, client.address]
        ).first
        if let until = try before?.decode(Date?.self, "until") {
            throw AccessError(.throttled, "too many failed sign-ins; try again later", retryAfter: until)
        }
        let parameters = try before?.decode(String?.self, "parameters")
        // Derived for unknown emails too, so that the time taken does not tell.
        let key = try await slot.deriveKey(password, parameters: parameters ?? hasher.defaultParameters)
        let row = try await pool.withTransaction { transaction in
            try await transaction.query(
                """
                select outcome, session_id, user_id, mfa_enrolled, retry_after
                from enclave_private.login($1, $2, $3, $4::text::inet, $5, $6::text::interval, $7::text::interval)
                """,
                [
                    email, key, token.value, client.address, client.userAgent,
                    "\(policy.idleTimeout.components.seconds) seconds",
                    "\(policy.absoluteTimeout.components.seconds) seconds",
                ]
            ).first
        }
        guard let row else { throw AccessError(.invalidCredentials, "wrong email or password") }
        switch try row.decode(String.self, "outcome") {
        case "ok":
            return Login(
                token: token,
                sessionID: try row.decode(UUID.self, "session_id"),
                userID: try row.decode(UUID.self, "user_id"),
                mfaEnrolled: try row.decode(Bool.self, "mfa_enrolled")
            )
        case "throttled":
            let until = try row.decode(Date?.self, "retry_after")
            throw AccessError(.throttled, "too many failed sign-ins; try again later", retryAfter: until)
        default:
            throw AccessError(.invalidCredentials, "wrong email or password")
        }
    }

    /// Starts TOTP enrollment: returns a new secret (shown once); `confirmMFA` with a code from
    /// it completes enrollment.
    public func beginMFAEnrollment(_ token: SessionToken, issuer: String = "Enclave") async throws -> MFAEnrollment {
        let secret = try SecretBytes(randomCount: 20)
        return try await withSession(token) { transaction in
            let who = try await transaction.query("select user_id from enclave_private.current_session()")
            guard let userID = try who.first?.decode(UUID.self, "user_id") else {
                throw AccessError(.unauthenticated, "sign in again: the session is not valid")
            }
            let wrapped = try await masterKeys.wrap(
                padded(secret), version: masterKeyVersion, context: Self.totpContext(userID))
            try await transaction.query("select enclave_private.begin_mfa_enrollment($1)", [wrapped])
            let encoded = secret.withUnsafeBytes { Base32.encode($0) }
            let label = issuer.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "Enclave"
            return MFAEnrollment(
                secret: encoded,
                uri: "otpauth://totp/\(label)?secret=\(encoded)&issuer=\(label)&algorithm=SHA1&digits=6&period=30"
            )
        }
    }

    /// Completes enrollment with a code from the new secret; the session counts as MFA-verified.
    public func confirmMFA(_ token: SessionToken, code: String, at date: Date = Date()) async throws {
        try await checkCode(token, code: code, pending: true, at: date)
    }

    /// Verifies a TOTP code for this session. A code is accepted once: a replay is refused.
    public func verifyMFA(_ token: SessionToken, code: String, at date: Date = Date()) async throws {
        try await checkCode(token, code: code, pending: false, at: date)
    }

    /// Confirms the password and a TOTP code, and returns a new token; the old one stops
    /// working. Sensitive actions need this within the last five minutes; the session must have
    /// completed MFA.
    public func reauthenticate(_ token: SessionToken, password: String, code: String?, at date: Date = Date())
        async throws
        -> SessionToken
    {
        let newToken = try SessionToken.generate()
        let outcome: String = try await withAuthSession(token) { transaction in
            let secretRow = try await transaction.query(
                "select user_id, secret from enclave_private.mfa_secret(false)"
            ).first
            guard let secretRow, let wrapped = try secretRow.decode([UInt8]?.self, "secret") else {
                throw AccessError(.mfaRequired, "set up a one-time code first")
            }
            let totp = try TOTP(
                secret: try await unwrapSecret(wrapped, user: try secretRow.decode(UUID.self, "user_id")))
            // A code that matches no step goes to the database too, which counts it (NULL).
            let step = try code.flatMap { try totp.matchingStep(for: $0, at: date, window: policy.totpWindow) }
                .map(Int64.init)
            let parameters = try await transaction.query(
                "select enclave_private.reauth_parameters() as parameters"
            ).first?.decode(String?.self, "parameters")
            let key = try await passwordWork.deriveKey(password, parameters: parameters ?? hasher.defaultParameters)
            return try await transaction.query(
                "select enclave_private.reauthenticate($1, $2, $3) as outcome", [key, step, newToken.value]
            ).first?.decode(String.self, "outcome") ?? "invalid"
        }
        switch outcome {
        case "ok": return newToken
        case "throttled": throw AccessError(.throttled, "too many failed attempts; try again later")
        default: throw Self.codeRefusal(outcome, invalid: "wrong password or code", at: date)
        }
    }

    /// Ends this session.
    public func logout(_ token: SessionToken) async throws {
        try await withSession(token) { try await $0.query("select enclave_private.logout()") }
    }

    /// The caller's live sessions.
    public func sessions(_ token: SessionToken) async throws -> [SessionInfo] {
        try await withSession(token) { transaction in
            try await transaction.query(
                "select session_id, created_at, last_seen_at, host(client_ip) as ip, user_agent, current from enclave_private.list_sessions()"
            ).map { row in
                SessionInfo(
                    id: try row.decode(UUID.self, "session_id"),
                    createdAt: try row.decode(Date.self, "created_at"),
                    lastSeenAt: try row.decode(Date.self, "last_seen_at"),
                    clientAddress: try row.decode(String?.self, "ip"),
                    userAgent: try row.decode(String?.self, "user_agent"),
                    current: try row.decode(Bool.self, "current")
                )
            }
        }
    }

    /// Ends one of the caller's own sessions.
    public func revokeSession(_ token: SessionToken, sessionID: UUID) async throws {
        let revoked = try await withSession(token) { transaction in
            try await transaction.query("select enclave_private.revoke_session($1) as revoked", [sessionID]).first?
                .decode(Bool.self, "revoked") ?? false
        }
        guard revoked else { throw AccessError(.notFound, "no such session") }
    }

    /// Changes the caller's password (needs a fresh re-authentication); every session ends.
    public func changePassword(_ token: SessionToken, current: String, new: String) async throws {
        try Directory.checkPassword(new)
        let changed = try await withSession(token) { transaction in
            let email =
                try await transaction.query("select email from enclave_private.whoami() limit 1").first?.decode(
                    String.self, "email") ?? ""
            let parameters = try await transaction.query(
                "select enclave_private.login_parameters($1, $2) as parameters", [email, hasher.defaultParameters]
            ).first?.decode(String.self, "parameters")
            let oldKey = try await passwordWork.deriveKey(current, parameters: parameters ?? hasher.defaultParameters)
            let newParameters = try hasher.newParameters()
            let newKey = try await passwordWork.deriveKey(new, parameters: newParameters)
            return try await transaction.query(
                "select enclave_private.change_password($1, $2, $3) as changed",
                [oldKey, newParameters, PasswordHasher.storedKey(for: newKey)]
            ).first?.decode(Bool.self, "changed") ?? false
        }
        guard changed else { throw AccessError(.invalidCredentials, "wrong password") }
    }

    /// The caller, with their memberships.
    public struct Me: Sendable {
        public let userID: UUID
        public let email: String
        public let displayName: String
        public let mfaVerified: Bool
        public let memberships: [(role: String, agency: UUID?, practice: UUID?)]
    }

    /// Who the token belongs to.
    public func me(_ token: SessionToken) async throws -> Me {
        try await withSession(token) { transaction in
            let rows = try await transaction.query(
                "select user_id, email, display_name, mfa_verified, role, agency_id, practice_id from enclave_private.whoami()"
            )
            guard let first = rows.first else {
                throw AccessError(.unauthenticated, "sign in again: the session is not valid")
            }
            return Me(
                userID: try first.decode(UUID.self, "user_id"), email: try first.decode(String.self, "email"),
                displayName: try first.decode(String.self, "display_name"),
                mfaVerified: try first.decode(Bool.self, "mfa_verified"),
                memberships: try rows.compactMap { row in
                    guard let role = try row.decode(String?.self, "role") else { return nil }
                    return (role, try row.decode(UUID?.self, "agency_id"), try row.decode(UUID?.self, "practice_id"))
                })
        }
    }

    // MARK: - Internals

    func withSession<T: Sendable>(
        _ token: SessionToken, tenant: UUID? = nil, _ body: (Transaction) async throws -> T
    ) async throws -> T {
        try await mappingAccessErrors {
            try await pool.withTransaction { transaction in
                try await transaction.bind(token, tenant: tenant)
                let valid = try await transaction.query("select session_id from enclave_private.touch_session()")
                guard !valid.isEmpty else {
                    throw AccessError(.unauthenticated, "sign in again: the session is not valid")
                }
                return try await body(transaction)
            }
        }
    }

    /// Runs `body` on the authentication role's pool, with the caller's token bound. The
    /// functions it may call check the session themselves.
    func withAuthSession<T: Sendable>(_ token: SessionToken, _ body: (Transaction) async throws -> T) async throws
        -> T
    {
        try await mappingAccessErrors {
            try await authPool.withTransaction { transaction in
                try await transaction.bind(token)
                return try await body(transaction)
            }
        }
    }

    /// Why a code was refused, as the database said: wrong (`invalid`), too many wrong codes in
    /// this session (`ended`: sign in again), too many for the user lately (`throttled`), or so
    /// many that an operator must unlock the user (`locked`).
    static func codeRefusal(_ outcome: String, invalid: String, at date: Date) -> AccessError {
        switch outcome {
        case "ended": AccessError(.unauthenticated, "too many wrong codes: sign in again")
        case "throttled":
            AccessError(
                .throttled, "too many wrong codes; try again in 15 minutes",
                retryAfter: date.addingTimeInterval(15 * 60))
        case "locked": AccessError(.throttled, "too many wrong codes: ask an operator to unlock your account")
        default: AccessError(.invalidCredentials, invalid)
        }
    }

    private func checkCode(_ token: SessionToken, code: String, pending: Bool, at date: Date) async throws {
        let outcome = try await withAuthSession(token) { transaction in
            let row = try await transaction.query(
                "select user_id, secret from enclave_private.mfa_secret($1)", [pending]
            ).first
            guard let row, let wrapped = try row.decode([UInt8]?.self, "secret") else {
                throw AccessError(.conflict, pending ? "start MFA enrollment first" : "MFA is not set up for this user")
            }
            let totp = try TOTP(secret: try await unwrapSecret(wrapped, user: try row.decode(UUID.self, "user_id")))
            // A code that matches no step is sent as NULL: the database counts every failure.
            let step = try totp.matchingStep(for: code, at: date, window: policy.totpWindow).map(Int64.init)
            return try await transaction.query(
                "select enclave_private.complete_mfa($1, $2) as outcome", [step, pending]
            ).first?.decode(String.self, "outcome") ?? "invalid"
        }
        guard outcome == "ok" else {
            throw Self.codeRefusal(outcome, invalid: "wrong or already used code", at: date)
        }
    }

    static func totpContext(_ userID: UUID) -> KeyWrapContext {
        KeyWrapContext(tenantID: userID, purpose: "totp", version: 1)
    }

    /// TOTP secrets are 20 bytes; key wrapping takes 32, so they travel zero-padded.
    private func padded(_ secret: SecretBytes) -> SecretBytes {
        secret.withUnsafeBytes { SecretBytes(copying: Array($0) + [UInt8](repeating: 0, count: 12)) }
    }

    private func unwrapSecret(_ wrapped: [UInt8], user: UUID) async throws -> SecretBytes {
        let padded = try await masterKeys.unwrap(wrapped, context: Self.totpContext(user))
        return padded.withUnsafeBytes { SecretBytes(copying: $0.prefix(20)) }
    }
}
