import Foundation
import Postgres
import Sealing

/// A practice's own system that hears about new leads.
public struct WebhookEndpoint: Sendable, Equatable {
    public let id: UUID
    public let url: String
    /// Covered by a BAA: the only kind of endpoint that may receive PHI (and only over HTTPS).
    public let baaCovered: Bool
    public let active: Bool
    public let createdAt: Date
}

/// Webhook endpoints of a practice. Only an owner adds or removes one (the database function
/// checks it); marking one as BAA-covered needs a fresh re-authentication; in HIPAA mode a
/// plain-HTTP endpoint is refused. The signing secret is shown once and kept sealed with the
/// practice's data key, bound to the endpoint's row.
public struct WebhookEndpoints: Sendable {
    public let access: PracticeAccess
    public let keys: TenantKeyStore

    public init(access: PracticeAccess, keys: TenantKeyStore) {
        self.access = access
        self.keys = keys
    }

    /// Adds an endpoint; returns it with its signing secret, which is never shown again.
    public func create(
        _ token: SessionToken, practice: UUID, url: String, baaCovered: Bool,
        context: RequestContext = RequestContext()
    ) async throws -> (endpoint: WebhookEndpoint, secret: String) {
        guard url.utf8.count <= 2000, let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(),
            ["http", "https"].contains(scheme), let host = parsed.host, !host.isEmpty, parsed.user == nil,
            parsed.password == nil
        else {
            throw AccessError(.invalidInput, "the endpoint must be an absolute http(s) URL without credentials")
        }
        let id = UUID()
        let secret = try TrackingSources.newSecret()
        return try await access.withPractice(token, practice: practice, scope: .leadsRead, context: context) {
            transaction in
            let key = try await keys.keys(practice, in: transaction).activeDataKey()
            let sealed = try FieldCipher.seal(
                Array(secret.utf8), with: key, for: Self.secretContext(practice: practice, endpoint: id))
            _ = try await mappingAccessErrors {
                try await transaction.query(
                    "select enclave_private.create_webhook_endpoint($1, $2, $3, $4)", [id, url, baaCovered, sealed])
            }
            return (
                WebhookEndpoint(id: id, url: url, baaCovered: baaCovered, active: true, createdAt: Date()), secret
            )
        }
    }

    /// The practice's endpoints, newest first.
    public func list(_ token: SessionToken, practice: UUID) async throws -> [WebhookEndpoint] {
        try await access.withPractice(token, practice: practice, scope: .leadsRead) { transaction in
            try await transaction.query(
                """
                select id, url, baa_covered, active, created_at from enclave.webhook_endpoints
                where tenant_id = $1 order by created_at desc, id
                """,
                [practice]
            ).map {
                WebhookEndpoint(
                    id: try $0.decode(UUID.self, "id"), url: try $0.decode(String.self, "url"),
                    baaCovered: try $0.decode(Bool.self, "baa_covered"), active: try $0.decode(Bool.self, "active"),
                    createdAt: try $0.decode(Date.self, "created_at"))
            }
        }
    }

    /// Deactivates an endpoint; its pending deliveries are dropped.
    public func remove(_ token: SessionToken, practice: UUID, endpoint: UUID) async throws {
        try await access.withPractice(token, practice: practice, scope: .leadsRead) { transaction in
            let removed = try await mappingAccessErrors {
                try await transaction.query(
                    "select enclave_private.remove_webhook_endpoint($1) as removed", [endpoint]
                ).first?.decode(Bool.self, "removed")
            }
            guard removed == true else { throw AccessError(.notFound, "no such active endpoint") }
        }
    }

    static func secretContext(practice: UUID, endpoint: UUID) -> FieldContext {
        FieldContext(tenantID: practice, table: "webhook_endpoints", column: "signing_secret", rowID: endpoint)
    }
}
