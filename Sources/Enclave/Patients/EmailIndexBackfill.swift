import Foundation
import Postgres
import Sealing

/// Fills `leads.email_index` for leads stored before the email blind index existed (issue 29),
/// so that a patient is found by email across the whole history: a built-in tenant migration,
/// run as the maintenance role inside each practice's context (row-level security confines it),
/// in keyset batches of `batchSize` leads, each batch its own transaction.
///
/// Resumable: each batch records where the next one starts in `enclave.tenant_migrations`
/// (migration `builtin/email_index`), in the batch's transaction; a run that stops (a crash, a
/// kill) goes on from there, and a practice done is skipped. A batch writes with compare-and-set
/// on the row's version, so a lead changed meanwhile (a redaction) is left as it is now.
public struct EmailIndexBackfill: Sendable {
    public let keys: KeyManagement
    public let batchSize: Int

    public init(keys: KeyManagement, batchSize: Int = 1_000) {
        self.keys = keys
        self.batchSize = max(1, min(batchSize, 50_000))
    }

    /// The ledger's name for this backfill.
    public static let name = "builtin/email_index"

    /// Backfills each of `tenants`, `jobs` at a time; returns the leads indexed per practice, in
    /// the order of `tenants`.
    public func run(
        tenants: [UUID], jobs: Int = 1,
        progress: @escaping @Sendable (MaintenanceContext.Progress) -> Void = { _ in }
    ) async throws -> [Int] {
        try await keys.maintenance.forEachTenant(
            tenants, jobs: max(1, jobs), progress: { (state: MaintenanceContext.Progress, _: Int) in progress(state) },
            { tenant in try await backfill(tenant) })
    }

    /// Backfills one practice; returns how many leads it indexed in this run.
    public func backfill(_ tenant: UUID) async throws -> Int {
        let ledger = TenantMigrationLedger(
            tenant: tenant,
            file: try MigrationFile(version: 0, name: Self.name, data: Data("leads.email_index from form_fields".utf8)))
        let maintenance = keys.maintenance
        let entry = try await maintenance.withTenant(tenant) { try await ledger.entry($0) }
        if entry.status == "done" { return 0 }
        try await maintenance.withTenant(tenant) { try await ledger.begin($0) }
        var cursor = entry.cursor.flatMap(UUID.init(uuidString:))
        var indexed = 0
        while true {
            let (changed, last) = try await maintenance.withTenant(tenant) { transaction -> (Int, UUID?) in
                let rows = try await transaction.query(
                    """
                    select id, xmin::text as row_version, form_fields from enclave.leads
                    where tenant_id = $1 and ($2::uuid is null or id > $2) and form_fields is not null
                      and email_index is null
                    order by id limit $3
                    """,
                    [tenant, cursor, batchSize])
                guard let lastRow = rows.last else { return (0, nil) }
                let keySet = try await keys.store.keys(tenant, in: transaction)
                let index = try await keySet.blindIndex()
                var ids: [UUID] = []
                var versions: [String] = []
                var indexes: [String] = []
                for row in rows {
                    let id = try row.decode(UUID.self, "id")
                    let plain = try await keySet.open(
                        try row.decode([UInt8].self, "form_fields"),
                        for: FieldContext(tenantID: tenant, table: "leads", column: "form_fields", rowID: id))
                    let fields = try? JSONDecoder().decode([String: String].self, from: Data(plain))
                    guard let address = NewLead.emailAddress(in: fields) else { continue }
                    ids.append(id)
                    versions.append(try row.decode(String.self, "row_version"))
                    indexes.append(try index.index(emailAddress: address).hex)
                }
                var changed = 0
                if !ids.isEmpty {
                    changed = try await transaction.execute(
                        """
                        update enclave.leads l set email_index = decode(u.email_index, 'hex')
                        from unnest($2::uuid[], $3::text[], $4::text[]) as u(id, row_version, email_index)
                        where l.tenant_id = $1 and l.id = u.id and l.xmin::text = u.row_version
                          and l.email_index is null
                        """,
                        [tenant, ids, versions, indexes])
                }
                let last = try lastRow.decode(UUID.self, "id")
                try await ledger.recordBatch(rows: changed, cursor: last.uuidString.lowercased(), transaction)
                return (changed, last)
            }
            indexed += changed
            guard let last else { break }
            cursor = last
        }
        try await maintenance.withTenant(tenant) { try await ledger.finish(rows: 0, $0) }
        return indexed
    }
}
