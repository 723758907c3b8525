import Foundation
import Postgres
import Sealing

/// Online re-encryption: moves every PHI ciphertext of a practice to its active data key
/// version, in batches, while reads and ingest go on.
///
/// Each batch re-seals in the service and writes back with compare-and-set on the row's `xmin`,
/// so a concurrent write (a redaction, say) is never overwritten: that row is simply picked up
/// again by the next pass. Practices run `jobs` at a time; when there are fewer practices than
/// jobs, each practice's leads are split into ranges of ids re-encrypted side by side. Recordings are re-sealed chunk by chunk under a lock on their lead.
/// Afterwards, versions that seal no row any more are reported (and, on request, destroyed).
public struct Reencryptor: Sendable {
    /// One practice's result.
    public struct Report: Sendable {
        public let tenant: UUID
        public let rows: Int
        public let recordings: Int
        /// Older data key versions that now seal nothing.
        public let unusedVersions: [UInt32]
    }

    public let keys: KeyManagement
    public let batchSize: Int

    public init(keys: KeyManagement, batchSize: Int = 2_000) {
        self.keys = keys
        self.batchSize = max(1, batchSize)
    }

    static let fields = [
        "caller_number", "caller_name", "transcript", "form_fields", "page_url", "transcript_redacted", "insights",
    ]

    /// Re-encrypts `tenant`; with `destroyUnused`, destroys versions left sealing nothing.
    /// Re-encrypts each of `tenants`, `jobs` at a time; `progress` hears of each as it finishes.
    /// Returns the reports in the order of `tenants`.
    public func reencrypt(
        tenants: [UUID], jobs: Int = 1, destroyUnused: Bool = false,
        progress: @escaping @Sendable (MaintenanceContext.Progress) -> Void = { _ in }
    ) async throws -> [Report] {
        let across = max(1, min(jobs, tenants.count))
        let within = max(1, jobs / across)
        return try await keys.maintenance.forEachTenant(
            tenants, jobs: across, progress: { (state: MaintenanceContext.Progress, _: Report) in progress(state) },
            { tenant in try await reencrypt(tenant, jobs: within, destroyUnused: destroyUnused) })
    }

    /// Re-encrypts `tenant`, its leads in `jobs` ranges of ids at once.
    public func reencrypt(_ tenant: UUID, jobs: Int = 1, destroyUnused: Bool = false) async throws -> Report {
        var rows = 0
        var pass = 0
        let ranges = Self.idRanges(max(1, min(jobs, 16)))
        while true {
            pass += 1
            let changed = try await withThrowingTaskGroup(of: Int.self) { group in
                for range in ranges { group.addTask { try await reencryptLeads(tenant, ids: range) } }
                return try await group.reduce(0, +)
            }
            rows += changed
            if try await remainingLeads(tenant) == 0 || pass > 20 { break }
        }
        let recordings = try await reencryptRecordings(tenant)
        try await resealWebhookSecrets(tenant)
        let unused = try await keys.maintenance.withTenant(tenant) { transaction -> [UInt32] in
            let unusedRows = try await transaction.query(
                """
                select k.version from enclave.tenant_keys k
                where k.tenant_id = $1 and k.purpose = 'data' and k.state = 'retired'
                  and not exists (select from enclave.leads l where l.tenant_id = $1 and l.dek_version = k.version)
                  and not exists (select from enclave.recordings r where r.tenant_id = $1 and r.dek_version = k.version)
                  and not exists (
                      select from enclave.webhook_endpoints w where w.tenant_id = $1
                        and ((get_byte(w.signing_secret, 1) << 24) | (get_byte(w.signing_secret, 2) << 16)
                             | (get_byte(w.signing_secret, 3) << 8) | get_byte(w.signing_secret, 4)) = k.version)
                order by 1
                """,
                [tenant])
            let versions = try unusedRows.map { UInt32(try $0.decode(Int32.self, "version")) }
            if destroyUnused, !versions.isEmpty {
                try await transaction.query(
                    """
                    update enclave.tenant_keys set state = 'destroyed', wrapped = null, destroyed_at = now()
                    where tenant_id = $1 and purpose = 'data' and version = any($2::int8[])
                    """,
                    [tenant, versions.map { Int64($0) }])
                try await transaction.audit(
                    AuditEvent(
                        tenant: tenant, action: .keyDestroyed, objectType: "data_key",
                        objectID: versions.map(String.init).joined(separator: ","),
                        reason: "no row uses it after re-encryption"))
            }
            try await transaction.audit(
                AuditEvent(
                    tenant: tenant, action: .tenantMigrationApplied, objectType: "reencryption", objectID: "reencrypt",
                    details: ["rows": .int(rows), "recordings": .int(recordings)]))
            return versions
        }
        if destroyUnused { keys.store.keyring.remove(tenantID: tenant) }
        return Report(tenant: tenant, rows: rows, recordings: recordings, unusedVersions: unused)
    }

    /// Re-seals webhook signing secrets under the active version (compare-and-set on the old
    /// bytes), so destroying an old version never leaves an endpoint unable to sign.
    private func resealWebhookSecrets(_ tenant: UUID) async throws {
        let store = keys.store
        try await keys.maintenance.withTenant(tenant) { transaction in
            let keySet = try await store.keys(tenant, in: transaction)
            let active = try await keySet.activeDataKey()
            for row in try await transaction.query(
                "select id, signing_secret from enclave.webhook_endpoints where tenant_id = $1", [tenant])
            {
                let sealed = try row.decode([UInt8].self, "signing_secret")
                guard try FieldCipher.keyVersion(of: sealed) != active.version else { continue }
                let id = try row.decode(UUID.self, "id")
                let context = WebhookEndpoints.secretContext(practice: tenant, endpoint: id)
                let resealed = try FieldCipher.seal(
                    try await keySet.open(sealed, for: context), with: active, for: context)
                try await transaction.query(
                    """
                    update enclave.webhook_endpoints set signing_secret = $3
                    where tenant_id = $1 and id = $2 and signing_secret = $4
                    """,
                    [tenant, id, resealed, sealed])
            }
        }
    }

    /// `count` consecutive ranges of ids covering every uuid: from `after` (inclusive; nil: the
    /// zero uuid) up to `through` (exclusive; nil: no end).
    static func idRanges(_ count: Int) -> [(after: UUID?, through: UUID?)] {
        let bounds: [UUID?] = (1..<count).map { index in
            let first = UInt8(index * 256 / count)
            return UUID(uuid: (first, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        }
        return zip([nil] + bounds, bounds + [nil]).map { ($0, $1) }
    }

    /// Leads still sealed by an old version.
    private func remainingLeads(_ tenant: UUID) async throws -> Int {
        try await keys.maintenance.withTenant(tenant) { transaction in
            let active = try await keys.store.keys(tenant, in: transaction).activeDataKey()
            return try await transaction.query(
                "select count(*)::int8 as n from enclave.leads where tenant_id = $1 and dek_version is not null and dek_version <> $2",
                [tenant, Int32(active.version)]
            ).first?.decode(Int.self, "n") ?? 0
        }
    }

    /// One pass over the practice's leads with ids in the range `ids`; returns the rows changed.
    private func reencryptLeads(_ tenant: UUID, ids range: (after: UUID?, through: UUID?)) async throws -> Int {
        let store = keys.store
        var cursor = range.after ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        var inclusive = true
        var changed = 0
        while true {
            let (batchChanged, last) = try await keys.maintenance.withTenant(tenant) { transaction -> (Int, UUID?) in
                let keySet = try await store.keys(tenant, in: transaction)
                let active = try await keySet.activeDataKey()
                let rows = try await transaction.query(
                    """
                    select id, dek_version, xmin::text as row_version, \(Self.fields.joined(separator: ", "))
                    from enclave.leads
                    where tenant_id = $1 and dek_version is not null and dek_version <> $2
                      and (id > $3 or ($5 and id = $3)) and ($6::uuid is null or id < $6)
                    order by id limit $4
                    """,
                    [tenant, Int32(active.version), cursor, batchSize, inclusive, range.through])
                guard !rows.isEmpty else { return (0, nil) }
                // The old keys, looked up once per version rather than once per field.
                var oldKeys: [UInt32: DataKey] = [:]
                for version in Set(try rows.map { UInt32(try $0.decode(Int32.self, "dek_version")) }) {
                    oldKeys[version] = try await keySet.dataKey(version: version)
                }
                var ids: [UUID] = []
                var versions: [String] = []
                var columns = Array(repeating: [String?](), count: Self.fields.count)
                for row in rows {
                    let id = try row.decode(UUID.self, "id")
                    ids.append(id)
                    versions.append(try row.decode(String.self, "row_version"))
                    for (index, field) in Self.fields.enumerated() {
                        guard let sealed = try row.decode([UInt8]?.self, field) else {
                            columns[index].append(nil)
                            continue
                        }
                        let context = FieldContext(tenantID: tenant, table: "leads", column: field, rowID: id)
                        guard let old = oldKeys[try FieldCipher.keyVersion(of: sealed)] else {
                            throw SealingError(.wrongKeyVersion, "a field is sealed by a version its row does not name")
                        }
                        let plain = try FieldCipher.open(sealed, with: old, for: context)
                        columns[index].append(try FieldCipher.seal(plain, with: active, for: context).hex)
                    }
                }
                let updated = try await transaction.execute(
                    """
                    update enclave.leads l set
                        caller_number = decode(nullif(u.c0, ''), 'hex'), caller_name = decode(nullif(u.c1, ''), 'hex'),
                        transcript = decode(nullif(u.c2, ''), 'hex'), form_fields = decode(nullif(u.c3, ''), 'hex'),
                        page_url = decode(nullif(u.c4, ''), 'hex'), transcript_redacted = decode(nullif(u.c5, ''), 'hex'),
                        insights = decode(nullif(u.c6, ''), 'hex'), dek_version = $2
                    from unnest(
                        $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                        $11::text[]) as u(id, row_version, c0, c1, c2, c3, c4, c5, c6)
                    where l.tenant_id = $1 and l.id = u.id and l.xmin::text = u.row_version
                    """,
                    // NULL travels as '' (a sealed value is never empty): the array codec has no NULLs.
                    [tenant, Int32(active.version), ids, versions]
                        + columns.map { column -> any PostgresEncodable in column.map { $0 ?? "" } })
                return (updated, ids.last)
            }
            changed += batchChanged
            guard let last else { break }
            cursor = last
            inclusive = false
        }
        return changed
    }

    /// Re-seals every recording not on the active version, each in one transaction.
    private func reencryptRecordings(_ tenant: UUID) async throws -> Int {
        let store = keys.store
        let leads = try await keys.maintenance.withTenant(tenant) { transaction in
            let active = try await store.keys(tenant, in: transaction).activeDataKey()
            return try await transaction.query(
                """
                select distinct lead_id from enclave.recordings where tenant_id = $1 and dek_version <> $2 order by 1
                """,
                [tenant, Int32(active.version)]
            ).map { try $0.decode(UUID.self, "lead_id") }
        }
        var done = 0
        for lead in leads {
            let moved = try await keys.maintenance.withTenant(tenant) { transaction -> Bool in
                let row = try await transaction.query(
                    "select recording_header, recording_chunks from enclave.leads where tenant_id = $1 and id = $2 for update",
                    [tenant, lead]
                ).first
                guard let row, let header = try row.decode([UInt8]?.self, "recording_header"),
                    let chunks = try row.decode(Int32?.self, "recording_chunks")
                else { return false }
                let keySet = try await store.keys(tenant, in: transaction)
                let active = try await keySet.activeDataKey()
                let recording = try await StoredRecording(
                    tenant: tenant, lead: lead, header: header, chunks: chunks, keySet: keySet)
                var sealer = try StreamSealer(
                    key: active,
                    context: FieldContext(tenantID: tenant, table: "recordings", column: "audio", rowID: lead),
                    chunkSize: recording.opener.plaintextChunkSize)
                try await recording.read(transaction) { at, plain, isLast in
                    try await transaction.query(
                        "update enclave.recordings set ciphertext = $1, dek_version = $2 where tenant_id = $3 and lead_id = $4 and chunk_index = $5",
                        [try sealer.seal(plain, isLast: isLast), Int32(active.version), tenant, lead, at])
                }
                try await transaction.query(
                    "update enclave.leads set recording_header = $1 where tenant_id = $2 and id = $3",
                    [sealer.header, tenant, lead])
                return true
            }
            if moved { done += 1 }
        }
        return done
    }
}
