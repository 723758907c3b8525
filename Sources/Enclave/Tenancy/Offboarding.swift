import Foundation
import Postgres
import Sealing

/// Offboarding a practice: optionally export its data for the practice, close every way in,
/// delete its PHI, destroy its keys, and keep its audit chain.
public struct Offboarding: Sendable {
    /// What offboarding did, and what remains for backups.
    public struct Report: Sendable {
        public let practice: UUID
        public let exportedLeads: Int?
        public let exportedRecordings: Int?
        public let agreementsRevoked: Int
        public let sessionsEnded: Int
        public let credentialsDisabled: Int
        public let leadsDeleted: Int
        public let keysDestroyed: Int
        /// Master key versions that wrapped the destroyed keys: older backups still hold copies
        /// of the practice's keys wrapped by these, readable until these versions are destroyed.
        public let masterKeyVersions: [UInt32]
    }

    public let keys: KeyManagement

    public init(keys: KeyManagement) {
        self.keys = keys
    }

    /// The practice's name, for the operator to confirm.
    public func name(of practice: UUID) async throws -> String {
        guard
            let name = try await keys.maintenance.pool.query(
                "select name from enclave.practices where id = $1 and status <> 'offboarded'", [practice]
            ).first?.decode(String.self, "name")
        else {
            throw ConfigurationError(
                "no practice \(practice.uuidString.lowercased()) to offboard (unknown, or already offboarded)")
        }
        return name
    }

    /// Offboards `practice`. With `export`, first writes every lead and recording into a tar
    /// encrypted with age to the practice's key or passphrase (`PracticeArchive`), recorded as
    /// `phi.export`. A legal hold stops it before anything changes.
    public func offboard(
        _ practice: UUID,
        export: (path: String, recipient: AgeEncryptor.Recipient)? = nil
    ) async throws -> Report {
        _ = try await name(of: practice)
        let holds =
            try await keys.maintenance.pool.query(
                "select count(*)::int8 as n from enclave_private.legal_holds($1) where released_at is null", [practice]
            ).first?.decode(Int.self, "n") ?? 0
        guard holds == 0 else {
            throw ConfigurationError(
                "the practice is under \(holds) legal hold(s): release them (enclave holds release) before offboarding; nothing was changed"
            )
        }
        var exported: (Int, Int)?
        if let export {
            exported = try await write(practice, to: export.path, recipient: export.recipient)
        }
        let closed = try await keys.maintenance.pool.query(
            "select agreements, sessions, credentials from enclave_private.close_practice_access($1)", [practice]
        ).first
        let store = keys.store
        let (deleted, destroyed, versions) = try await keys.maintenance.withTenant(practice) {
            transaction -> (Int, Int, [UInt32]) in
            let versions = try await transaction.query(
                "select distinct kek_version from enclave.tenant_keys where tenant_id = $1 and state <> 'destroyed' order by 1",
                [practice]
            ).map { UInt32(try $0.decode(Int32.self, "kek_version")) }
            let destroyed = try await store.destroyAll(practice, in: transaction)
            // Every row of every tenant table (the catalog says which), the keys' included; the
            // audit trail stays.
            let erased = try await transaction.query(
                "select table_name, deleted from enclave_private.erase_tenant_rows($1)", [practice])
            let deleted =
                try erased.first { try $0.decode(String.self, "table_name") == "leads" }
                .map { Int(try $0.decode(Int64.self, "deleted")) } ?? 0
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .tenantOffboarded, objectType: "practice",
                    objectID: practice.uuidString.lowercased(),
                    details: ["leads_deleted": .int(deleted), "keys_destroyed": .int(destroyed)]))
            try await transaction.query("select enclave_private.finish_offboarding($1)", [practice])
            return (deleted, destroyed, versions)
        }
        return Report(
            practice: practice, exportedLeads: exported?.0, exportedRecordings: exported?.1,
            agreementsRevoked: Int(try closed?.decode(Int32.self, "agreements") ?? 0),
            sessionsEnded: Int(try closed?.decode(Int32.self, "sessions") ?? 0),
            credentialsDisabled: Int(try closed?.decode(Int32.self, "credentials") ?? 0),
            leadsDeleted: deleted, keysDestroyed: destroyed, masterKeyVersions: versions)
    }

    private func write(_ practice: UUID, to path: String, recipient: AgeEncryptor.Recipient) async throws
        -> (Int, Int)
    {
        let store = keys.store
        return try await keys.maintenance.withTenant(practice) { transaction in
            let counts = try await PracticeArchive.export(
                practice: practice, in: transaction, keys: store, to: recipient, path: path,
                reason: "offboarding export")
            return (counts.leads, counts.recordings)
        }
    }
}
