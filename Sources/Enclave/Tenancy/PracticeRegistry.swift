import Foundation
import Postgres

/// Creating practices (tenants). A practice gets its first data key and index key in the same
/// transaction that creates it, so no practice ever exists without keys.
public struct PracticeRegistry: Sendable {
    public let keys: KeyManagement

    public init(keys: KeyManagement) {
        self.keys = keys
    }

    /// Creates a practice named `name` (HIPAA mode on) and returns its id.
    public func create(name: String) async throws -> UUID {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(trimmed.count) else {
            throw ConfigurationError("a practice name has 1 to 200 characters")
        }
        let id = UUID()
        let store = keys.store
        let masterVersion = keys.activeMasterVersion
        try await keys.maintenance.pool.withTransaction { transaction in
            try await transaction.query("insert into enclave.practices (id, name) values ($1, $2)", [id, trimmed])
            try await transaction.query(
                "select set_config('enclave.maint_tenant', $1, true)", [id.uuidString.lowercased()])
            try await store.provision(id, masterKeyVersion: masterVersion, in: transaction)
            try await transaction.audit(
                AuditEvent(
                    tenant: id, action: .tenantCreated, objectType: "practice", objectID: id.uuidString.lowercased()))
        }
        return id
    }
}
