import Foundation
import Postgres
import Synchronization

/// The fixed vocabulary of audit actions (the database refuses any other).
public enum AuditAction: String, Sendable, CaseIterable, Codable {
    case login = "auth.login"
    case loginFailed = "auth.login_failed"
    case logout = "auth.logout"
    case mfaEnrolled = "auth.mfa_enrolled"
    /// A wrong one-time code (counted by the database; see complete_mfa).
    case mfaFailed = "auth.mfa_failed"
    /// An operator cleared a user's code lock.
    case mfaUnlocked = "auth.mfa_unlocked"
    case mfaVerified = "auth.mfa_verified"
    case reauthenticated = "auth.reauth"
    case passwordChanged = "auth.password_changed"
    case sessionExpired = "session.expired"
    case sessionRevoked = "session.revoked"
    case baaProposed = "baa.proposed"
    case baaApproved = "baa.approved"
    case baaDeclined = "baa.declined"
    case baaRevoked = "baa.revoked"
    case baaExpired = "baa.expired"
    case assignmentGranted = "assignment.granted"
    case assignmentRemoved = "assignment.removed"
    case phiRead = "phi.read"
    case phiExport = "phi.export"
    case phiDisclosed = "phi.disclosed"
    case recordingPlayed = "recording.played"
    case recordingFetched = "recording.fetched"
    case recordingProviderDeleted = "recording.provider_deleted"
    case leadCreated = "lead.created"
    case leadRedacted = "lead.redacted"
    case leadQualified = "lead.qualified"
    case spendRecorded = "spend.recorded"
    case conversionsExported = "conversions.exported"
    case keyRotated = "key.rotated"
    case masterKeyRotated = "key.master_rotated"
    case keyDestroyed = "key.destroyed"
    case tenantCreated = "tenant.created"
    case tenantOffboarded = "tenant.offboarded"
    case tenantMigrationApplied = "tenant_migration.applied"
    case accessDenied = "access.denied"
    case retention = "audit.retention"
    case auditExported = "audit.exported"
    case userCreated = "user.created"
    case userDisabled = "user.disabled"
    case agencyCreated = "agency.created"
    case webhookCreated = "webhook.created"
    case webhookRemoved = "webhook.removed"
    case breakGlassOpened = "breakglass.opened"
    case breakGlassEnded = "breakglass.ended"
    case breakGlassAcknowledged = "breakglass.acknowledged"
    case responderGranted = "responder.granted"
    case responderRevoked = "responder.revoked"
    case complianceSettingsChanged = "compliance.settings_changed"
    case legalHoldPlaced = "legal_hold.placed"
    case legalHoldReleased = "legal_hold.released"
    case retentionPurged = "retention.purged"
    /// A practice looked a patient up by phone number or email (the count found, never the
    /// identifier).
    case patientLookedUp = "patient.looked_up"
    case patientRequestLogged = "patient.request_logged"
    case patientRequestDone = "patient.request_done"
    /// A lead restricted at the patient's request: no webhook or export carries it.
    case leadRestricted = "lead.restricted"
    case staffScopesChanged = "staff.scopes_changed"
    /// The worker made a call's transcript, its redacted form and its tags.
    case transcriptCreated = "transcript.created"
    /// A practice's keyword set was saved or deleted.
    case keywordsChanged = "keywords.changed"
}

/// How an audited attempt ended.
public enum AuditOutcome: String, Sendable, Codable {
    case ok
    case denied
    case error
}

/// Where a request came from, carried into the audit trail.
public struct RequestContext: Sendable, Equatable {
    public var requestID: String?
    public var client: ClientInfo

    public init(requestID: String? = nil, client: ClientInfo = ClientInfo()) {
        self.requestID = requestID
        self.client = client
    }
}

/// One event to record. It carries ids and small facts, never PHI.
public struct AuditEvent: Sendable {
    /// The practice whose chain it joins; `AuditEvent.platform` for the platform chain.
    public var tenant: UUID
    public var action: AuditAction
    public var objectType: String?
    public var objectID: String?
    public var outcome: AuditOutcome
    public var reason: String?
    /// A small JSON object of ids and counts (at most 4 KiB).
    public var details: [String: AuditValue]

    /// The platform chain's id.
    public static let platform = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    public init(
        tenant: UUID,
        action: AuditAction,
        objectType: String? = nil,
        objectID: String? = nil,
        outcome: AuditOutcome = .ok,
        reason: String? = nil,
        details: [String: AuditValue] = [:]
    ) {
        self.tenant = tenant
        self.action = action
        self.objectType = objectType
        self.objectID = objectID
        self.outcome = outcome
        self.reason = reason
        self.details = details
    }
}

/// A value in an event's details: ids, counts, short non-PHI strings, lists of ids.
public enum AuditValue: Sendable, Equatable, Codable {
    case string(String)
    case int(Int)
    case ids([UUID])

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .ids(let value): try container.encode(value.map { $0.uuidString.lowercased() })
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode([String].self) {
            self = .ids(value.compactMap(UUID.init(uuidString:)))
        } else {
            self = .string(try container.decode(String.self))
        }
    }
}

extension Transaction {
    /// Records `event` in this transaction: if the write fails, the whole unit of work fails,
    /// so no access goes unrecorded.
    @discardableResult
    public func audit(_ event: AuditEvent, context: RequestContext = RequestContext()) async throws -> Int64 {
        do {
            return try await record(event, context: context)
        } catch {
            AuditWriteFailures.count.add(1, ordering: .relaxed)
            throw error
        }
    }

    private func record(_ event: AuditEvent, context: RequestContext) async throws -> Int64 {
        let rows = try await query(
            """
            select enclave_private.record_audit($1, $2, $3, $4, $5, $6, $7, $8, $9::text::inet, $10) as seq
            """,
            [
                event.tenant, event.action.rawValue, event.objectType, event.objectID, event.outcome.rawValue,
                event.reason,
                try JSONB(encoding: event.details), context.requestID, context.client.address, context.client.userAgent,
            ]
        )
        // NULL: a stranger's refusal, counted per address and minute rather than chained.
        return try rows.first?.decode(Int64?.self, "seq") ?? 0
    }
}

/// Audit writes that failed in this process (each failed the unit of work it belonged to), for
/// monitoring: a rising count means accesses are being refused because they cannot be recorded.
public enum AuditWriteFailures {
    public static let count = Atomic<Int>(0)
}
