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
    /// `enclave` (the signed JSON format) or a telephony provider (`twilio`).
    public let provider: String
}

/// A Twilio account's settings for a call source. The auth token is the source's ingest
/// secret: wrapped by the master key, never shown again.
public struct TwilioSettings: Sendable {
    public var accountSID: String
    public var authToken: String
    /// The practice's own number, where calls are forwarded.
    public var forwardTo: String
    /// Says "This call may be recorded." before forwarding.
    public var announceRecording: Bool

    public init(accountSID: String, authToken: String, forwardTo: String, announceRecording: Bool = false) {
        self.accountSID = accountSID
        self.authToken = authToken
        self.forwardTo = forwardTo
        self.announceRecording = announceRecording
    }
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
        let secret = try Self.newSecret()
        let source = try await insert(
            token, practice: practice, kind: kind, label: label, trackingNumber: trackingNumber, defaults: defaults,
            secret: secret, twilio: nil)
        return (source, secret)
    }

    /// Creates a call source whose calls arrive from Twilio (`/v1/capture/twilio/{source}/…`):
    /// the auth token checks the provider's signatures and fetches recordings.
    public func createTwilio(
        _ token: SessionToken, practice: UUID, label: String, trackingNumber: String?,
        defaults: Attribution = Attribution(),
        twilio: TwilioSettings
    ) async throws -> TrackingSource {
        let account = twilio.accountSID
        guard account.utf8.count == 34, account.hasPrefix("AC"),
            account.dropFirst(2).allSatisfy({ $0.isHexDigit && !$0.isUppercase })
        else { throw AccessError(.invalidInput, "an account SID is AC and 32 lowercase hex digits") }
        guard (16...200).contains(twilio.authToken.utf8.count),
            twilio.authToken.allSatisfy({ $0.isASCII && !$0.isWhitespace })
        else { throw AccessError(.invalidInput, "the auth token has 16 to 200 printable characters") }
        guard let forward = try? PhoneNumber.normalize(twilio.forwardTo) else {
            throw AccessError(.invalidInput, "the number to forward to is not a phone number")
        }
        var settings = twilio
        settings.forwardTo = forward
        return try await insert(
            token, practice: practice, kind: "call", label: label, trackingNumber: trackingNumber, defaults: defaults,
            secret: twilio.authToken, twilio: settings)
    }

    private func insert(
        _ token: SessionToken, practice: UUID, kind: String, label: String, trackingNumber: String?,
        defaults: Attribution, secret: String, twilio: TwilioSettings?
    ) async throws -> TrackingSource {
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
        let wrapped = try await wrap(secret, source: id)
        return try await access.withPractice(token, practice: practice, scope: .trackingManage) { transaction in
            // A setting: through the definer function, which needs a fresh re-authentication.
            try await transaction.query(
                "select enclave_private.create_tracking_source($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                [
                    id, kind, label, trackingNumber, defaults.source, defaults.medium, defaults.campaign,
                    twilio == nil ? "enclave" : "twilio", twilio?.accountSID, twilio?.forwardTo,
                    twilio?.announceRecording ?? false, SHA256.hash(Array(secret.utf8)), wrapped,
                ])
            return TrackingSource(
                id: id, practiceID: practice, kind: kind, label: label, trackingNumber: trackingNumber,
                defaults: defaults, disabled: false, provider: twilio == nil ? "enclave" : "twilio")
        }
    }

    /// Replaces a source's secret; the old one stops working at once.
    public func rotateSecret(_ token: SessionToken, practice: UUID, source: UUID) async throws -> String {
        let provider = try await access.pool.query(
            "select provider from enclave_private.ingest_source($1)", [source]
        ).first?.decode(String.self, "provider")
        guard provider != "twilio" else {
            throw AccessError(.invalidInput, "a Twilio source's secret is the account's auth token, set at Twilio")
        }
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
                select id, kind, label, tracking_number, default_source, default_medium, default_campaign, disabled_at,
                       provider
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
                    disabled: try row.decode(Date?.self, "disabled_at") != nil,
                    provider: try row.decode(String.self, "provider"))
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
