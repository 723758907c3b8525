import Foundation
import Postgres
import Sealing

/// Operators' key commands over every tenant: rotation of data keys and of the master key,
/// destruction of retired master keys, and status. Runs as `enclave_maint`, one tenant per
/// transaction.
public struct KeyManagement: Sendable {
    public let maintenance: MaintenanceContext
    public let masterKeys: MasterKeyFile
    /// The master key version new wraps use, as the registry says.
    public let activeMasterVersion: UInt32
    /// The key store over this master key file, with the one key cache every operation shares.
    public let store: TenantKeyStore
    private let log: @Sendable (String) -> Void

    /// Loads the master key file and checks it against the registry before any work.
    public static func open(
        masterKeyFile path: String,
        maintenance: MaintenanceContext,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> KeyManagement {
        let file = try MasterKeyFile.load(path: path)
        let active = try await MasterKeyRegistry.reconcile(file, pool: maintenance.pool)
        return KeyManagement(
            maintenance: maintenance, masterKeys: file, activeMasterVersion: active,
            store: TenantKeyStore(provider: file),
            log: log)
    }

    /// Rotates the data key of each tenant; returns each tenant's new version.
    public func rotate(tenants: [UUID]) async throws -> [(tenantID: UUID, version: UInt32)] {
        let store = self.store
        let active = activeMasterVersion
        let versions = try await maintenance.forEachTenant(tenants, progress: log) { tenantID, transaction in
            let version = try await store.rotate(tenantID, masterKeyVersion: active, in: transaction)
            try await transaction.audit(
                AuditEvent(
                    tenant: tenantID, action: .keyRotated, objectType: "data_key", objectID: String(version),
                    details: ["master_key_version": .int(Int(active))]))
            return version
        }
        return Array(zip(tenants, versions)).map { ($0.0, $0.1) }
    }

    /// What `rotateMaster` did.
    public struct MasterRotation: Sendable {
        /// The master key version that is now active.
        public let activeVersion: UInt32
        /// Data keys re-wrapped under it.
        public let rewrapped: Int
        /// True when this run finished an earlier, interrupted rotation instead of starting one.
        public let resumed: Bool
        /// Older versions that still exist in the file and wrap no live key any more.
        public let destroyable: [UInt32]
    }

    /// Adds a master key version, makes it active and re-wraps every data key under it; data is
    /// not re-encrypted. If an earlier rotation was interrupted, this run finishes that one
    /// instead. The old version stays in the file, so no key is ever left unreadable.
    public func rotateMaster() async throws -> MasterRotation {
        var file = masterKeys
        var target = activeMasterVersion
        // A version in the file above the registry's active one is a rotation that stopped
        // between writing the file and registering it.
        if let pending = file.versions.last, pending > target {
            try await MasterKeyRegistry.activate(pending, provider: file, pool: maintenance.pool)
            target = pending
        }
        let tenants = try await maintenance.tenantIDs()
        var rewrapped = try await rewrapAll(tenants, to: target, file: file)
        let resumed = rewrapped > 0 || target != activeMasterVersion
        if !resumed {
            let added = try file.addingVersion()
            file = added.file
            target = added.version
            log("wrote master key version \(target) to \(file.path)")
            try await MasterKeyRegistry.activate(target, provider: file, pool: maintenance.pool)
            rewrapped = try await rewrapAll(tenants, to: target, file: file)
        }
        let rewrappedCount = rewrapped
        let activeVersion = target
        try await maintenance.withTenant(AuditEvent.platform) { transaction in
            try await transaction.audit(
                AuditEvent(
                    tenant: AuditEvent.platform, action: .masterKeyRotated, objectType: "master_key",
                    objectID: String(activeVersion), reason: resumed ? "resumed an interrupted rotation" : nil,
                    details: ["rewrapped": .int(rewrappedCount)]))
        }
        let registry = try await MasterKeyRegistry.entries(maintenance.pool)
        let older = registry.filter { $0.state == "retired" && file.versions.contains($0.version) }.map(\.version)
        return MasterRotation(activeVersion: target, rewrapped: rewrapped, resumed: resumed, destroyable: older)
    }

    /// Removes master key `version` from the file for good. Refuses while it is active or
    /// while any live data key is still wrapped by it.
    public func destroyMaster(version: UInt32) async throws {
        guard version != activeMasterVersion else {
            throw ConfigurationError("master key version \(version) is active; rotate the master key first")
        }
        guard masterKeys.versions.contains(version) else {
            throw ConfigurationError("master key version \(version) is not in \(masterKeys.path)")
        }
        let tenants = try await maintenance.tenantIDs()
        let dependents = try await maintenance.forEachTenant(tenants) { tenantID, transaction in
            let rows = try await transaction.query(
                """
                select count(*)::int8 as n from enclave.tenant_keys
                where tenant_id = $1 and kek_version = $2 and state <> 'destroyed'
                """,
                [tenantID, Int32(version)]
            )
            return try rows.first?.decode(Int.self, "n") ?? 0
        }
        let secrets = try await wrappedSecrets().filter { $0.masterVersion == version }.count
        guard secrets == 0 else {
            throw ConfigurationError(
                "refusing to destroy master key version \(version): it still wraps \(secrets) TOTP or ingest secrets; "
                    + "run `enclave keys rotate-master` to re-wrap them first"
            )
        }
        let total = dependents.reduce(0, +)
        guard total == 0 else {
            let practices = zip(tenants, dependents).filter { $0.1 > 0 }.count
            throw ConfigurationError(
                "refusing to destroy master key version \(version): it still wraps \(total) data keys of "
                    + "\(practices) practices; run `enclave keys rotate-master` to re-wrap them first"
            )
        }
        _ = try masterKeys.removingVersion(version)
        try await MasterKeyRegistry.markDestroyed(version, pool: maintenance.pool)
        try await maintenance.withTenant(AuditEvent.platform) { transaction in
            try await transaction.audit(
                AuditEvent(
                    tenant: AuditEvent.platform, action: .keyDestroyed, objectType: "master_key",
                    objectID: String(version)))
        }
    }

    /// One tenant's keys and how many stored rows each data key version seals.
    public struct TenantStatus: Sendable {
        public let tenantID: UUID
        public let keys: [TenantKeyStore.KeyRecord]
        /// Rows of leads and recordings per data key version.
        public let rowsByVersion: [UInt32: Int]
    }

    /// Every tenant's keys, with row counts per version.
    public func status(tenants: [UUID]? = nil) async throws -> [TenantStatus] {
        let store = self.store
        let ids: [UUID]
        if let tenants { ids = tenants } else { ids = try await maintenance.tenantIDs() }
        return try await maintenance.forEachTenant(ids) { tenantID, transaction in
            let keys = try await store.records(tenantID, in: transaction)
            let counts = try await transaction.query(
                """
                select dek_version, sum(n)::int8 as n from (
                    select dek_version, count(*) as n from enclave.leads
                    where tenant_id = $1 and dek_version is not null group by 1
                    union all
                    select dek_version, count(*) from enclave.recordings where tenant_id = $1 group by 1
                ) as used group by 1
                """,
                [tenantID]
            )
            var rows: [UInt32: Int] = [:]
            for row in counts {
                rows[UInt32(try row.decode(Int32.self, "dek_version"))] = try row.decode(Int.self, "n")
            }
            return TenantStatus(tenantID: tenantID, keys: keys, rowsByVersion: rows)
        }
    }

    private func rewrapAll(_ tenants: [UUID], to version: UInt32, file: MasterKeyFile) async throws -> Int {
        let store = TenantKeyStore(provider: file)
        let dataKeys = try await maintenance.forEachTenant(tenants, progress: log) { tenantID, transaction in
            try await store.rewrap(tenantID, to: version, in: transaction)
        }.reduce(0, +)
        return dataKeys + (try await rewrapSecrets(to: version, file: file))
    }

    /// Secrets wrapped by a master key outside the tenant tables (TOTP seeds, ingest secrets).
    struct WrappedSecret: Sendable {
        let kind: String
        let id: UUID
        let wrapped: [UInt8]
        let masterVersion: UInt32

        /// What the secret is bound to when wrapped (see IdentityService and TrackingSources).
        var context: KeyWrapContext {
            KeyWrapContext(tenantID: id, purpose: kind == "ingest" ? "ingest" : "totp", version: 1)
        }
    }

    func wrappedSecrets() async throws -> [WrappedSecret] {
        try await maintenance.pool.query(
            "select kind, id, wrapped, master_version from enclave_private.master_wrapped_secrets()"
        ).map {
            WrappedSecret(
                kind: try $0.decode(String.self, "kind"), id: try $0.decode(UUID.self, "id"),
                wrapped: try $0.decode([UInt8].self, "wrapped"),
                masterVersion: UInt32(try $0.decode(Int32.self, "master_version")))
        }
    }

    /// Re-wraps every such secret not under `version`, each with compare-and-set.
    private func rewrapSecrets(to version: UInt32, file: MasterKeyFile) async throws -> Int {
        var count = 0
        for secret in try await wrappedSecrets() where secret.masterVersion != version {
            let material = try await file.unwrap(secret.wrapped, context: secret.context)
            let rewrapped = try await file.wrap(material, version: version, context: secret.context)
            let done =
                try await maintenance.pool.query(
                    "select enclave_private.rewrap_master_secret($1, $2, $3, $4) as done",
                    [secret.kind, secret.id, secret.wrapped, rewrapped]
                ).first?.decode(Bool.self, "done") ?? false
            if done { count += 1 }
        }
        return count
    }
}
