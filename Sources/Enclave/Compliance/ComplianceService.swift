import Foundation
import Postgres
import Sealing

/// An emergency access to a practice (break-glass).
public struct BreakGlass: Sendable, Equatable {
    public let id: UUID
    public let practiceID: UUID
    public let practiceName: String
    public let responderEmail: String
    public let reason: String
    public let openedAt: Date
    public let expiresAt: Date
    public let endedAt: Date?
    public let acknowledgedAt: Date?
    /// Open now: not ended and not expired, by the database's clock.
    public let active: Bool
}

/// A practice's retention, alert thresholds, business hours and export key.
public struct ComplianceSettings: Sendable, Equatable {
    /// Days to keep each kind of data; nil keeps it.
    public var recordingsDays: Int?
    public var transcriptsDays: Int?
    public var formFieldsDays: Int?
    public var leadsDays: Int?
    /// One user reading more leads than this in an hour raises an alert.
    public var readsPerHour: Int = 200
    /// Local business hours [start, end); 0 to 24 is all day (no after-hours alerts).
    public var hoursStart: Int = 0
    public var hoursEnd: Int = 24
    /// An IANA time zone name.
    public var timeZone: String = "UTC"
    /// The age recipient (`age1…`) exports are encrypted to; nil asks for a passphrase.
    public var ageRecipient: String?

    public init(
        recordingsDays: Int? = nil, transcriptsDays: Int? = nil, formFieldsDays: Int? = nil, leadsDays: Int? = nil,
        readsPerHour: Int = 200, hoursStart: Int = 0, hoursEnd: Int = 24, timeZone: String = "UTC",
        ageRecipient: String? = nil
    ) {
        self.recordingsDays = recordingsDays
        self.transcriptsDays = transcriptsDays
        self.formFieldsDays = formFieldsDays
        self.leadsDays = leadsDays
        self.readsPerHour = readsPerHour
        self.hoursStart = hoursStart
        self.hoursEnd = hoursEnd
        self.timeZone = timeZone
        self.ageRecipient = ageRecipient
    }
}

/// A legal hold on a practice or some of its leads.
public struct LegalHold: Sendable, Equatable {
    public let id: UUID
    /// How many leads it names; 0 with `wholePractice`.
    public let leads: Int
    public let wholePractice: Bool
    public let reason: String
    /// The owner's email, or "operator".
    public let placedBy: String
    public let placedAt: Date
    public let releasedAt: Date?
}

/// An access alert (PHI-free: a kind, who, counts, and the audit events behind it).
public struct AccessAlert: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case readsVolume = "reads_volume"
        case afterHours = "after_hours"
        case failedSignins = "failed_signins"
        case breakGlass = "break_glass"
        case webhookCovered = "webhook_covered"
        case agreementExpiry = "agreement_expiry"
        /// A patient's request open past its due day (issue 29).
        case requestOverdue = "request_overdue"

        /// A sentence about it, without PHI, for the console and email.
        public var summary: String {
            switch self {
            case .readsVolume: "Someone read more leads in an hour than the practice's threshold"
            case .afterHours: "Someone read leads outside the practice's business hours"
            case .failedSignins: "Repeated failed sign-ins for an account that can reach the practice"
            case .breakGlass: "Emergency (break-glass) access to the practice was opened"
            case .webhookCovered: "A webhook was marked covered by a BAA: it will receive PHI"
            case .agreementExpiry: "A Business Associate Agreement is close to expiry"
            case .requestOverdue: "A patient's request is past its due day"
            }
        }
    }

    public let id: UUID
    public let practiceID: UUID
    public let practiceName: String
    public let kind: Kind
    public let subjectEmail: String?
    /// Counts and ids as text (leads_read, threshold, days…).
    public let details: [String: String]
    public let auditSeqs: [Int64]
    public let createdAt: Date
    public let acknowledgedAt: Date?
}

/// One audit event behind an alert.
public struct AlertEvent: Sendable, Equatable {
    public let seq: Int64
    public let at: Date
    public let actorEmail: String?
    public let action: String
    public let objectType: String?
    public let objectID: String?
    public let outcome: String
}

/// Compliance operations for signed-in people: break-glass, settings and legal holds, alerts,
/// and the owner's export. The database checks each caller (sql/functions/alerts.sql, breakglass.sql, retention.sql, mail.sql, export.sql).
public struct ComplianceService: Sendable {
    public let identity: IdentityService
    public let access: PracticeAccess
    public let keys: TenantKeyStore

    public init(identity: IdentityService, access: PracticeAccess, keys: TenantKeyStore) {
        self.identity = identity
        self.access = access
        self.keys = keys
    }

    // MARK: break-glass

    /// A platform responder opens emergency read-only access (re-authenticated; at most an hour).
    public func openBreakGlass(_ token: SessionToken, practice: UUID, reason: String, seconds: Int) async throws -> UUID
    {
        guard (1...3600).contains(seconds) else {
            throw AccessError(.invalidInput, "emergency access lasts at most an hour")
        }
        return try await identity.withSession(token) { transaction in
            guard
                let id = try await transaction.query(
                    "select enclave_private.open_break_glass($1, $2, $3::int4) as id", [practice, reason, seconds]
                ).first?.decode(UUID.self, "id")
            else { throw AccessError(.conflict, "not opened") }
            return id
        }
    }

    /// The responder ends it early.
    @discardableResult
    public func endBreakGlass(_ token: SessionToken, id: UUID) async throws -> Bool {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.end_break_glass($1) as ended", [id]).first?.decode(
                Bool.self, "ended") ?? false
        }
    }

    /// A practice's break-glass accesses (nil: of every practice the caller owns), for owners.
    public func breakGlass(_ token: SessionToken, practice: UUID?) async throws -> [BreakGlass] {
        try await identity.withSession(token) {
            try await Self.decode($0.query("select * from enclave_private.owner_break_glass($1)", [practice]))
        }
    }

    /// The responder's own break-glass accesses.
    public func responderBreakGlass(_ token: SessionToken) async throws -> [BreakGlass] {
        try await identity.withSession(token) { try await Self.list($0) }
    }

    static func list(_ transaction: Transaction) async throws -> [BreakGlass] {
        try decode(try await transaction.query("select * from enclave_private.list_break_glass(500)"))
    }

    /// Rows of owner_break_glass and list_break_glass (the same columns).
    static func decode(_ rows: PostgresRows) throws -> [BreakGlass] {
        try rows.map {
            BreakGlass(
                id: try $0.decode(UUID.self, "id"), practiceID: try $0.decode(UUID.self, "practice_id"),
                practiceName: try $0.decode(String.self, "practice_name"),
                responderEmail: try $0.decode(String.self, "responder_email"),
                reason: try $0.decode(String.self, "reason"), openedAt: try $0.decode(Date.self, "opened_at"),
                expiresAt: try $0.decode(Date.self, "expires_at"), endedAt: try $0.decode(Date?.self, "ended_at"),
                acknowledgedAt: try $0.decode(Date?.self, "acknowledged_at"), active: try $0.decode(Bool.self, "active")
            )
        }
    }

    /// An owner acknowledges a break-glass of the practice.
    @discardableResult
    public func acknowledgeBreakGlass(_ token: SessionToken, id: UUID) async throws -> Bool {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.acknowledge_break_glass($1) as done", [id]).first?.decode(
                Bool.self, "done") ?? false
        }
    }

    // MARK: settings and legal holds

    public func settings(_ token: SessionToken, practice: UUID) async throws -> ComplianceSettings {
        try await identity.withSession(token) { try await Self.settings($0, practice) }
    }

    static func settings(_ transaction: Transaction, _ practice: UUID) async throws -> ComplianceSettings {
        guard
            let row = try await transaction.query("select * from enclave_private.compliance_settings($1)", [practice])
                .first
        else { return ComplianceSettings() }
        return ComplianceSettings(
            recordingsDays: try row.decode(Int32?.self, "recordings_days").map(Int.init),
            transcriptsDays: try row.decode(Int32?.self, "transcripts_days").map(Int.init),
            formFieldsDays: try row.decode(Int32?.self, "form_fields_days").map(Int.init),
            leadsDays: try row.decode(Int32?.self, "leads_days").map(Int.init),
            readsPerHour: Int(try row.decode(Int32.self, "reads_per_hour")),
            hoursStart: Int(try row.decode(Int16.self, "hours_start")),
            hoursEnd: Int(try row.decode(Int16.self, "hours_end")), timeZone: try row.decode(String.self, "time_zone"),
            ageRecipient: try row.decode(String?.self, "age_recipient"))
    }

    /// An owner, freshly re-authenticated, changes them.
    public func setSettings(_ token: SessionToken, practice: UUID, _ settings: ComplianceSettings) async throws {
        if let recipient = settings.ageRecipient {
            do { _ = try AgeEncryptor.decodeRecipient(recipient) } catch {
                throw AccessError(.invalidInput, "the age key is an age1… recipient, as age-keygen prints it")
            }
        }
        func int4(_ value: Int?) -> Int32? { value.map { Int32(clamping: $0) } }
        try await identity.withSession(token) {
            try await $0.query(
                "select enclave_private.set_compliance_settings($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [
                    practice, int4(settings.recordingsDays), int4(settings.transcriptsDays),
                    int4(settings.formFieldsDays), int4(settings.leadsDays), Int32(clamping: settings.readsPerHour),
                    Int32(clamping: settings.hoursStart), Int32(clamping: settings.hoursEnd), settings.timeZone,
                    settings.ageRecipient,
                ])
        }
    }

    public func holds(_ token: SessionToken, practice: UUID) async throws -> [LegalHold] {
        try await identity.withSession(token) { try await Self.holds($0, practice) }
    }

    static func holds(_ transaction: Transaction, _ practice: UUID) async throws -> [LegalHold] {
        try await transaction.query("select * from enclave_private.legal_holds($1)", [practice]).map {
            LegalHold(
                id: try $0.decode(UUID.self, "id"), leads: Int(try $0.decode(Int32.self, "leads")),
                wholePractice: try $0.decode(Bool.self, "whole_practice"), reason: try $0.decode(String.self, "reason"),
                placedBy: try $0.decode(String.self, "placed_by"), placedAt: try $0.decode(Date.self, "placed_at"),
                releasedAt: try $0.decode(Date?.self, "released_at"))
        }
    }

    /// An owner places a hold on the whole practice (`leads` nil) or on some leads.
    public func placeHold(_ token: SessionToken, practice: UUID, leads: [UUID]?, reason: String) async throws -> UUID {
        try await identity.withSession(token) { try await Self.placeHold($0, practice, leads, reason) }
    }

    static func placeHold(_ transaction: Transaction, _ practice: UUID, _ leads: [UUID]?, _ reason: String) async throws
        -> UUID
    {
        guard
            let id = try await transaction.query(
                "select enclave_private.place_legal_hold($1, $2, $3) as id", [practice, leads, reason]
            ).first?.decode(UUID.self, "id")
        else { throw AccessError(.conflict, "not placed") }
        return id
    }

    @discardableResult
    public func releaseHold(_ token: SessionToken, id: UUID) async throws -> Bool {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.release_legal_hold($1) as done", [id]).first?.decode(
                Bool.self, "done") ?? false
        }
    }

    // MARK: alerts

    /// A practice's alerts (owners), or an agency's about its staff (admins).
    public func alerts(_ token: SessionToken, practice: UUID? = nil, agency: UUID? = nil, limit: Int = 100)
        async throws -> [AccessAlert]
    {
        try await identity.withSession(token) { transaction in
            try await transaction.query(
                """
                select id, practice_id, practice_name, kind, subject_email, details::text as details, audit_seqs,
                       created_at, acknowledged_at
                from enclave_private.list_alerts($1, $2, $3::int4)
                """, [practice, agency, limit]
            ).compactMap { row in
                guard let kind = AccessAlert.Kind(rawValue: try row.decode(String.self, "kind")) else { return nil }
                let details =
                    (try? JSONSerialization.jsonObject(with: Data(try row.decode(String.self, "details").utf8)))
                    as? [String: Any] ?? [:]
                return AccessAlert(
                    id: try row.decode(UUID.self, "id"), practiceID: try row.decode(UUID.self, "practice_id"),
                    practiceName: try row.decode(String.self, "practice_name"), kind: kind,
                    subjectEmail: try row.decode(String?.self, "subject_email"),
                    details: details.mapValues { "\($0)" }, auditSeqs: try row.decode([Int64].self, "audit_seqs"),
                    createdAt: try row.decode(Date.self, "created_at"),
                    acknowledgedAt: try row.decode(Date?.self, "acknowledged_at"))
            }
        }
    }

    @discardableResult
    public func acknowledgeAlert(_ token: SessionToken, id: UUID) async throws -> Bool {
        try await identity.withSession(token) {
            try await $0.query("select enclave_private.acknowledge_alert($1) as done", [id]).first?.decode(
                Bool.self, "done") ?? false
        }
    }

    /// The audit events an alert links to.
    public func alertEvents(_ token: SessionToken, id: UUID) async throws -> [AlertEvent] {
        try await identity.withSession(token) { transaction in
            try await transaction.query("select * from enclave_private.alert_events($1)", [id]).map {
                AlertEvent(
                    seq: try $0.decode(Int64.self, "seq"), at: try $0.decode(Date.self, "at"),
                    actorEmail: try $0.decode(String?.self, "actor_email"),
                    action: try $0.decode(String.self, "action"),
                    objectType: try $0.decode(String?.self, "object_type"),
                    objectID: try $0.decode(String?.self, "object_id"), outcome: try $0.decode(String.self, "outcome"))
            }
        }
    }

    // MARK: export

    /// The owner's "download our data": a re-authenticated owner gets every lead and recording
    /// as an age-encrypted tar at `path`, to the practice's age key, else to `passphrase`;
    /// recorded as `phi.export` in the same transaction.
    public func export(
        _ token: SessionToken, practice: UUID, passphrase: String?, path: String,
        context: RequestContext = RequestContext()
    ) async throws -> PracticeArchive.Counts {
        let keys = self.keys
        return try await access.withPractice(token, practice: practice, scope: .leadsRead, context: context) {
            transaction in
            let configured = try await transaction.query(
                "select enclave_private.begin_practice_export($1) as recipient", [practice]
            ).first?.decode(String?.self, "recipient")
            let recipient: AgeEncryptor.Recipient
            if let configured {
                recipient = .x25519(configured)
            } else if let passphrase, passphrase.count >= 12 {
                recipient = .passphrase(passphrase)
            } else {
                throw AccessError(
                    .invalidInput, "give a passphrase of at least 12 characters, or set the practice's age key first")
            }
            return try await PracticeArchive.export(
                practice: practice, in: transaction, keys: keys, to: recipient, path: path, reason: "owner download",
                withRestricted: false, context: context)
        }
    }
}
