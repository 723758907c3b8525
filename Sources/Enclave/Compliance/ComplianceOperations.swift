import Foundation
import Postgres

/// The operators' side of compliance, as the maintenance role: the retention purge and the
/// alert scan (periodic, with an injected clock), break-glass oversight, responders, holds.
public struct ComplianceOperations: Sendable {
    /// What one purge pass removed.
    public struct PurgeSummary: Sendable, Equatable {
        public var practices = 0
        public var recordings = 0
        public var transcripts = 0
        public var formFields = 0
        public var leads = 0
        /// Practices skipped because a legal hold covers them whole.
        public var held = 0
        public init() {}
    }

    public let maintenance: MaintenanceContext
    /// The worker's clock: what "expired" and "the past hour" are measured from. The database
    /// refuses a clock ahead of its own.
    public let clock: @Sendable () -> Date
    /// Leads per kind per batch (each batch is one transaction with its audit event).
    public let batchSize: Int

    public init(
        maintenance: MaintenanceContext, batchSize: Int = 1000, clock: @escaping @Sendable () -> Date = Date.init
    ) {
        self.maintenance = maintenance
        self.batchSize = batchSize
        self.clock = clock
    }

    /// Purges what each practice's retention says has expired, in batches, skipping anything
    /// under a legal hold; each batch records `retention.purged` with its counts.
    public func purge() async throws -> PurgeSummary {
        let asOf = clock()
        var summary = PurgeSummary()
        let practices = try await maintenance.pool.query(
            "select practice_id from enclave_private.retention_practices()"
        )
        .map { try $0.decode(UUID.self, "practice_id") }
        for practice in practices {
            summary.practices += 1
            while true {
                let batch = try await maintenance.withTenant(practice) { transaction -> (Int, Int, Int, Int, Bool) in
                    guard
                        let row = try await transaction.query(
                            "select * from enclave_private.purge_expired($1, $2::int4)", [asOf, batchSize]
                        ).first
                    else { return (0, 0, 0, 0, false) }
                    let counts = (
                        Int(try row.decode(Int32.self, "recordings")), Int(try row.decode(Int32.self, "transcripts")),
                        Int(try row.decode(Int32.self, "form_fields")), Int(try row.decode(Int32.self, "leads")),
                        try row.decode(Bool.self, "held")
                    )
                    if counts.0 + counts.1 + counts.2 + counts.3 > 0 {
                        try await transaction.audit(
                            AuditEvent(
                                tenant: practice, action: .retentionPurged, objectType: "practice",
                                objectID: practice.uuidString.lowercased(), reason: "retention policy",
                                details: [
                                    "recordings": .int(counts.0), "transcripts": .int(counts.1),
                                    "form_fields": .int(counts.2), "leads": .int(counts.3),
                                ]))
                    }
                    return counts
                }
                summary.recordings += batch.0
                summary.transcripts += batch.1
                summary.formFields += batch.2
                summary.leads += batch.3
                if batch.4 { summary.held += 1 }
                if batch.0 < batchSize && batch.1 < batchSize && batch.2 < batchSize && batch.3 < batchSize { break }
            }
        }
        return summary
    }

    /// Raises the alerts due now by the clock; returns how many are new.
    public func scanAlerts() async throws -> Int {
        Int(
            try await maintenance.pool.query(
                "select enclave_private.scan_access_alerts($1) as raised", [clock()]
            ).first?.decode(Int32.self, "raised") ?? 0)
    }

    /// Every break-glass access, newest first.
    public func breakGlass() async throws -> [BreakGlass] {
        try await maintenance.pool.withTransaction { try await ComplianceService.list($0) }
    }

    /// Grants or withdraws the platform responder role; withdrawing ends open break-glass.
    public func setResponder(email: String, _ responder: Bool) async throws {
        try await mappingAccessErrors {
            try await maintenance.pool.query("select enclave_private.set_responder($1, $2)", [email, responder])
        }
    }

    /// A practice's settings (the export key among them).
    public func settings(practice: UUID) async throws -> ComplianceSettings {
        try await maintenance.pool.withTransaction { try await ComplianceService.settings($0, practice) }
    }

    public func holds(practice: UUID) async throws -> [LegalHold] {
        try await mappingAccessErrors {
            try await maintenance.pool.withTransaction { try await ComplianceService.holds($0, practice) }
        }
    }

    public func placeHold(practice: UUID, leads: [UUID]?, reason: String) async throws -> UUID {
        try await mappingAccessErrors {
            try await maintenance.pool.withTransaction {
                try await ComplianceService.placeHold($0, practice, leads, reason)
            }
        }
    }

    @discardableResult
    public func releaseHold(_ id: UUID) async throws -> Bool {
        try await mappingAccessErrors {
            try await maintenance.pool.query("select enclave_private.release_legal_hold($1) as done", [id]).first?
                .decode(Bool.self, "done") ?? false
        }
    }
}
