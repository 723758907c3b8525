import Foundation
import Postgres
import Sealing

/// A tracking phone number or web form of a practice.
public struct TrackingSource: Sendable, Equatable {
    public let id: UUID
    public let practiceID: UUID
    public let kind: String
    public let label: String
    public let trackingNumber: String?
    public let defaults: Attribution
    public let disabled: Bool
}

/// Tracking sources and their ingest credentials. The secret is shown once, at creation or
/// rotation; the database keeps its SHA-256 and a copy wrapped by the master key.
public struct TrackingSources: Sendable {
    public let access: PracticeAccess
    public let masterKeys: any MasterKeyProvider
    public let masterKeyVersion: UInt32

    public init(access: PracticeAccess, masterKeys: any MasterKeyProvider, masterKeyVersion: UInt32) {
        self.access = access
        self.masterKeys = masterKeys
        self.masterKeyVersion = masterKeyVersion
    }

    /// Creates a source; returns it with its ingest secret, which is never shown again.
    public func create(
        _ token: SessionToken,
        practice: UUID,
        kind: String,
        label: String,
        trackingNumber: String? = nil,
        defaults: Attribution = Attribution()
    ) async throws -> (source: TrackingSource, secret: String) {
        guard ["call", "form"].contains(kind) else { throw AccessError(.invalidInput, "kind must be call or form") }
        let label = label.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(label.count) else {
            throw AccessError(.invalidInput, "a label has 1 to 200 characters")
        }
        if let trackingNumber {
            guard (try? PhoneNumber.normalize(trackingNumber)) != nil else {
                throw AccessError(.invalidInput, "the tracking number is not a phone number")
            }
        }
        let id = UUID()
        let secret = try Self.newSecret()
        let wrapped = try await wrap(secret, source: id)
        return try await access.withPractice(token, practice: practice, scope: .trackingManage) { transaction in
            // A setting: through the definer function, which needs a fresh re-authentication.
            try await transaction.query(
                "select enclave_private.create_tracking_source($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [
                    id, kind, label, trackingNumber, defaults.source, defaults.medium, defaults.campaign,
                    SHA256.hash(Array(secret.utf8)), wrapped,
                ])
            return (
                TrackingSource(
                    id: id, practiceID: practice, kind: kind, label: label, trackingNumber: trackingNumber,
                    defaults: defaults, disabled: false),
                secret
            )
        }
    }

    /// Replaces a source's secret; the old one stops working at once.
    public func rotateSecret(_ token: SessionToken, practice: UUID, source: UUID) async throws -> String {
        let secret = try Self.newSecret()
        let wrapped = try await wrap(secret, source: source)
        try await access.withPractice(token, practice: practice, scope: .trackingManage) { transaction in
            try await transaction.query(
                "select enclave_private.set_ingest_credential($1, $2, $3)",
                [source, SHA256.hash(Array(secret.utf8)), wrapped])
        }
        return secret
    }

    /// The practice's sources (never their secrets).
    public func list(_ token: SessionToken, practice: UUID) async throws -> [TrackingSource] {
        try await access.withPractice(token, practice: practice, scope: .leadsRead) { transaction in
            try await transaction.query(
                """
                select id, kind, label, tracking_number, default_source, default_medium, default_campaign, disabled_at
                from enclave.tracking_sources where tenant_id = $1 order by created_at
                """,
                [practice]
            ).map { row in
                TrackingSource(
                    id: try row.decode(UUID.self, "id"), practiceID: practice,
                    kind: try row.decode(String.self, "kind"),
                    label: try row.decode(String.self, "label"),
                    trackingNumber: try row.decode(String?.self, "tracking_number"),
                    defaults: Attribution(
                        source: try row.decode(String?.self, "default_source"),
                        medium: try row.decode(String?.self, "default_medium"),
                        campaign: try row.decode(String?.self, "default_campaign")),
                    disabled: try row.decode(Date?.self, "disabled_at") != nil)
            }
        }
    }

    static func newSecret() throws -> String {
        "whsec_"
            + Data(try SecureRandom.bytes(32)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func secretContext(_ source: UUID) -> KeyWrapContext {
        KeyWrapContext(tenantID: source, purpose: "ingest", version: 1)
    }

    private func wrap(_ secret: String, source: UUID) async throws -> [UInt8] {
        try await masterKeys.wrap(
            SecretBytes(copying: Array(secret.utf8)), version: masterKeyVersion, context: Self.secretContext(source))
    }
}
