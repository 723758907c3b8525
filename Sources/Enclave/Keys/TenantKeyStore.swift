import Foundation
import Postgres
import Sealing
import Synchronization

/// Tenants' data keys in `enclave.tenant_keys`, wrapped by the master key provider.
///
/// Which versions exist and which is active is read from the database in every unit of work,
/// so rotation and destruction take effect at once in every process; only unwrapped material
/// is cached (in a `Keyring`), so the hot path does not unwrap per field.
public struct TenantKeyStore: Sendable {
    /// Key purposes: `data` seals PHI; `index` keys blind indexes.
    public enum Purpose: String, Sendable, CaseIterable {
        case data
        case index
    }

    /// One row of `tenant_keys`, without its wrapped bytes.
    public struct KeyRecord: Sendable, Equatable {
        public let purpose: Purpose
        public let version: UInt32
        public let masterKeyVersion: UInt32
        public let state: String
    }

    public let provider: any MasterKeyProvider
    public let keyring: Keyring

    public init(provider: any MasterKeyProvider, keyring: Keyring = Keyring()) {
        self.provider = provider
        self.keyring = keyring
    }

    /// Creates the first data key and index key of a new tenant, in the caller's transaction.
    public func provision(_ tenantID: UUID, masterKeyVersion: UInt32, in transaction: Transaction) async throws {
        for purpose in Purpose.allCases {
            try await insertKey(
                tenantID, purpose: purpose, version: 1, masterKeyVersion: masterKeyVersion, in: transaction)
        }
    }

    /// The tenant's keys as they stand in this transaction.
    public func keys(_ tenantID: UUID, in transaction: Transaction) async throws -> TenantKeySet {
        try keySet(
            tenantID,
            try await transaction.query(
                """
                select purpose, version, kek_version, state, wrapped from enclave.tenant_keys
                where tenant_id = $1 and state <> 'destroyed'
                """,
                [tenantID]
            ))
    }

    /// The active keys of the practice an ingest credential is bound to: such a credential
    /// reads no table, so they come through `enclave_private.ingest_keys()`.
    public func ingestKeys(_ tenantID: UUID, in transaction: Transaction) async throws -> TenantKeySet {
        try keySet(
            tenantID,
            try await transaction.query(
                "select purpose, version, kek_version, state, wrapped from enclave_private.ingest_keys()"))
    }

    /// The key set of `rows` whose columns are `purpose`, `version`, `state` and `wrapped`, each
    /// name after `prefix` (`key_` in `enclave_private.lead_read`).
    func keySet(_ tenantID: UUID, _ rows: some Sequence<PostgresRow>, prefix: String = "") throws -> TenantKeySet {
        var keys: [TenantKeySet.Entry] = []
        for row in rows {
            guard let purpose = Purpose(rawValue: try row.decode(String.self, prefix + "purpose")) else { continue }
            keys.append(
                TenantKeySet.Entry(
                    purpose: purpose,
                    version: UInt32(try row.decode(Int32.self, prefix + "version")),
                    active: try row.decode(String.self, prefix + "state") == "active",
                    wrapped: try row.decode([UInt8].self, prefix + "wrapped")
                )
            )
        }
        return TenantKeySet(tenantID: tenantID, entries: keys, store: self)
    }

    /// Every key row of the tenant, destroyed ones included.
    public func records(_ tenantID: UUID, in transaction: Transaction) async throws -> [KeyRecord] {
        try await transaction.query(
            "select purpose, version, kek_version, state from enclave.tenant_keys where tenant_id = $1 order by purpose, version",
            [tenantID]
        ).compactMap { row in
            guard let purpose = Purpose(rawValue: try row.decode(String.self, "purpose")) else { return nil }
            return KeyRecord(
                purpose: purpose,
                version: UInt32(try row.decode(Int32.self, "version")),
                masterKeyVersion: UInt32(try row.decode(Int32.self, "kek_version")),
                state: try row.decode(String.self, "state")
            )
        }
    }

    /// Makes a new data key version active for all new writes; older versions stay to open old data.
    public func rotate(_ tenantID: UUID, masterKeyVersion: UInt32, in transaction: Transaction) async throws -> UInt32 {
        try await lock(tenantID, transaction)
        let newest = try await transaction.query(
            "select coalesce(max(version), 0) as v from enclave.tenant_keys where tenant_id = $1 and purpose = 'data'",
            [tenantID]
        )
        let version = UInt32(try newest.first?.decode(Int32.self, "v") ?? 0) + 1
        try await transaction.query(
            """
            update enclave.tenant_keys set state = 'retired', retired_at = now()
            where tenant_id = $1 and purpose = 'data' and state = 'active'
            """,
            [tenantID]
        )
        try await insertKey(
            tenantID, purpose: .data, version: version, masterKeyVersion: masterKeyVersion, in: transaction)
        return version
    }

    /// Re-wraps every live key of the tenant not yet under `masterKeyVersion`; data stays as is.
    /// Returns how many keys it re-wrapped.
    public func rewrap(_ tenantID: UUID, to masterKeyVersion: UInt32, in transaction: Transaction) async throws -> Int {
        try await lock(tenantID, transaction)
        let rows = try await transaction.query(
            """
            select purpose, version, kek_version, wrapped from enclave.tenant_keys
            where tenant_id = $1 and state <> 'destroyed' and kek_version <> $2
            """,
            [tenantID, Int32(masterKeyVersion)]
        )
        for row in rows {
            let purpose = try row.decode(String.self, "purpose")
            let version = try row.decode(Int32.self, "version")
            let context = KeyWrapContext(tenantID: tenantID, purpose: purpose, version: UInt32(version))
            let material = try await provider.unwrap(try row.decode([UInt8].self, "wrapped"), context: context)
            let wrapped = try await provider.wrap(material, version: masterKeyVersion, context: context)
            // Compare-and-set on the old master key version: a concurrent change is never overwritten.
            try await transaction.query(
                """
                update enclave.tenant_keys set wrapped = $1, kek_version = $2
                where tenant_id = $3 and purpose = $4 and version = $5 and kek_version = $6
                """,
                [
                    wrapped, Int32(masterKeyVersion), tenantID, purpose, version,
                    try row.decode(Int32.self, "kek_version"),
                ]
            )
        }
        return rows.count
    }

    /// Destroys every key of the tenant: the wrapped material is erased for good, so nothing
    /// sealed for the tenant can be opened again. Returns how many keys it destroyed.
    public func destroyAll(_ tenantID: UUID, in transaction: Transaction) async throws -> Int {
        try await lock(tenantID, transaction)
        let destroyed = try await transaction.execute(
            """
            update enclave.tenant_keys set state = 'destroyed', wrapped = null, destroyed_at = now()
            where tenant_id = $1 and state <> 'destroyed'
            """,
            [tenantID]
        )
        keyring.remove(tenantID: tenantID)
        try await transaction.audit(
            AuditEvent(
                tenant: tenantID, action: .keyDestroyed, objectType: "tenant_keys", details: ["keys": .int(destroyed)]))
        return destroyed
    }

    /// Unwraps (or finds in the cache) the key of `entry`.
    func material(_ tenantID: UUID, _ entry: TenantKeySet.Entry) async throws -> SecretBytes {
        let id = Keyring.KeyID(tenantID: tenantID, purpose: entry.purpose.rawValue, version: entry.version)
        return try await keyring.material(for: id) {
            try await provider.unwrap(
                entry.wrapped,
                context: KeyWrapContext(tenantID: tenantID, purpose: entry.purpose.rawValue, version: entry.version))
        }
    }

    private func insertKey(
        _ tenantID: UUID,
        purpose: Purpose,
        version: UInt32,
        masterKeyVersion: UInt32,
        in transaction: Transaction
    ) async throws {
        let material = try SecretBytes(randomCount: 32)
        let wrapped = try await provider.wrap(
            material, version: masterKeyVersion,
            context: KeyWrapContext(tenantID: tenantID, purpose: purpose.rawValue, version: version))
        try await transaction.query(
            """
            insert into enclave.tenant_keys (tenant_id, purpose, version, kek_version, wrapped, state)
            values ($1, $2, $3, $4, $5, 'active')
            """,
            [tenantID, purpose.rawValue, Int32(version), Int32(masterKeyVersion), wrapped]
        )
    }

    /// Serializes key changes of one tenant across processes.
    private func lock(_ tenantID: UUID, _ transaction: Transaction) async throws {
        try await transaction.query(
            "select pg_advisory_xact_lock(hashtextextended('enclave.tenant_keys:' || $1::text, 0))", [tenantID])
    }
}

/// A tenant's live keys as read in one unit of work.
public struct TenantKeySet: Sendable {
    struct Entry: Sendable {
        let purpose: TenantKeyStore.Purpose
        let version: UInt32
        let active: Bool
        let wrapped: [UInt8]
    }

    public let tenantID: UUID
    let entries: [Entry]
    let store: TenantKeyStore
    /// The data keys made from these entries so far: a key is scheduled once per key set (one
    /// unit of work, or an ingest source's cached set), not once per field.
    private let made = MadeKeys()

    init(tenantID: UUID, entries: [Entry], store: TenantKeyStore) {
        self.tenantID = tenantID
        self.entries = entries
        self.store = store
    }

    /// The data key that seals new values.
    public func activeDataKey() async throws -> DataKey {
        guard let entry = entries.first(where: { $0.purpose == .data && $0.active }) else {
            throw SealingError(.keyUnavailable, "the practice has no active data key")
        }
        return try await dataKey(entry)
    }

    /// The data key of `version`, to open a value sealed with it.
    public func dataKey(version: UInt32) async throws -> DataKey {
        guard let entry = entries.first(where: { $0.purpose == .data && $0.version == version }) else {
            throw SealingError(
                .keyUnavailable, "data key version \(version) is not available (destroyed or never made)")
        }
        return try await dataKey(entry)
    }

    private func dataKey(_ entry: Entry) async throws -> DataKey {
        if let key = made.keys.withLock({ $0[entry.version] }) { return key }
        let key = try DataKey(version: entry.version, material: try await store.material(tenantID, entry))
        made.keys.withLock { $0[entry.version] = key }
        return key
    }

    private final class MadeKeys: Sendable {
        let keys = Mutex<[UInt32: DataKey]>([:])
    }

    /// The blind index under the tenant's active index key.
    public func blindIndex() async throws -> BlindIndex {
        guard let entry = entries.first(where: { $0.purpose == .index && $0.active }) else {
            throw SealingError(.keyUnavailable, "the practice has no index key")
        }
        return try BlindIndex(key: try await store.material(tenantID, entry))
    }

    /// Opens a field ciphertext with whichever data key version sealed it.
    public func open(_ ciphertext: [UInt8], for context: FieldContext) async throws -> [UInt8] {
        try FieldCipher.open(
            ciphertext, with: try await dataKey(version: FieldCipher.keyVersion(of: ciphertext)), for: context)
    }
}
