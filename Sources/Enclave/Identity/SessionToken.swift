import Foundation
import Postgres
import Sealing

/// An opaque bearer token: 256 random bits, base64url. The database stores only its SHA-256.
public struct SessionToken: Sendable, Hashable, CustomStringConvertible {
    /// The token as the client sends it. Never log it.
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    /// A new random token.
    public static func generate() throws -> SessionToken {
        let encoded = Data(try SecureRandom.bytes(32)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return SessionToken("enc_" + encoded)
    }

    /// Hides the value: tokens must not reach logs.
    public var description: String { "SessionToken(…)" }
}

/// Where a request came from, for sessions, throttling and the audit trail.
public struct ClientInfo: Sendable, Equatable {
    public var address: String?
    public var userAgent: String?

    public init(address: String? = nil, userAgent: String? = nil) {
        self.address = address
        self.userAgent = userAgent
    }
}

extension Transaction {
    /// Binds the credential (and the tenant, if any) for this transaction: the first statement
    /// of every unit of work. Transaction-local, so safe behind a transaction-mode pooler.
    func bind(_ token: SessionToken, tenant: UUID? = nil) async throws {
        try await query(
            "select set_config('enclave.session_token', $1, true), set_config('enclave.tenant_id', $2, true)",
            [token.value, tenant?.uuidString.lowercased() ?? ""]
        )
    }
}
