import Foundation
import Postgres

/// The environment variables Enclave reads, and the connection each one names.
public enum DatabaseRole: String, Sendable, CaseIterable {
    /// `enclave_owner`: owns every object and runs schema migrations.
    case owner = "ENCLAVE_ADMIN_DATABASE_URL"
    /// `enclave_app`: the service's role, confined by row-level security.
    case app = "ENCLAVE_DATABASE_URL"
    /// `enclave_maint`: runs tenant migrations, one tenant context at a time.
    case maint = "ENCLAVE_MAINT_DATABASE_URL"
    /// `enclave_auth`: completes MFA and re-authentication, on a small pool of its own.
    case auth = "ENCLAVE_AUTH_DATABASE_URL"

    /// The environment variable that holds this role's connection URL.
    public var variable: String { rawValue }
}

/// A configuration problem, described so that the operator can fix it; never shows a password.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension ConnectionConfiguration {
    /// The connection for `role`, from `override` (a CLI flag) or else its environment variable.
    ///
    /// - Throws: `ConfigurationError` naming the variable when it is missing, malformed or
    ///   insecure.
    public static func forRole(
        _ role: DatabaseRole,
        override: String? = nil,
        allowInsecureTransport: Bool = false,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ConnectionConfiguration {
        let source = override == nil ? role.variable : "--database-url"
        guard let string = override ?? environment[role.variable], !string.isEmpty else {
            throw ConfigurationError(
                "\(role.variable) is not set: it must hold the PostgreSQL URL of the \(role.roleName) role "
                    + "(for a dev cluster: eval \"$(scripts/dev-postgres env)\")"
            )
        }
        do {
            return try ConnectionConfiguration(string, allowInsecureTransport: allowInsecureTransport)
        } catch let error as PostgresError {
            throw ConfigurationError("\(source): \(error.description)")
        }
    }
}

extension DatabaseRole {
    var roleName: String {
        switch self {
        case .owner: "enclave_owner"
        case .app: "enclave_app"
        case .maint: "enclave_maint"
        case .auth: "enclave_auth"
        }
    }
}
