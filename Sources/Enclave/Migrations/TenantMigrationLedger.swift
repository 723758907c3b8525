import Foundation
import Postgres

/// The ledger of tenant migrations: one row of `enclave.tenant_migrations` per (tenant,
/// migration), with its state, attempts, rows, last error and, for a batched backfill, the
/// cursor of the last committed batch. Every write happens in the transaction of the work it
/// records, so the ledger never claims more than was done.
struct TenantMigrationLedger {
    /// A pair's row, if it has one.
    struct Entry {
        let status: String?
        let checksum: String?
        let cursor: String?
    }

    let tenant: UUID
    let file: MigrationFile

    func entry(_ transaction: Transaction) async throws -> Entry {
        let row = try await transaction.query(
            "select status, checksum, batch_cursor from enclave.tenant_migrations where tenant_id = $1 and migration = $2",
            [tenant, file.name]
        ).first
        return Entry(
            status: try row?.decode(String.self, "status"), checksum: try row?.decode(String?.self, "checksum"),
            cursor: try row?.decode(String?.self, "batch_cursor"))
    }

    /// Marks the pair running, counting an attempt unless it was already running (a resumed
    /// backfill).
    func begin(_ transaction: Transaction) async throws {
        try await transaction.query(
            """
            insert into enclave.tenant_migrations (tenant_id, migration, status, started_at, attempts, checksum)
            values ($1, $2, 'running', now(), 1, $3)
            on conflict (tenant_id, migration) do update
            set status = 'running', error = null, checksum = $3,
                attempts = enclave.tenant_migrations.attempts
                    + case when enclave.tenant_migrations.status = 'running' then 0 else 1 end
            """,
            [tenant, file.name, file.checksum])
    }

    /// Records one committed batch of a backfill and where the next one starts.
    func recordBatch(rows: Int, cursor: String?, _ transaction: Transaction) async throws {
        try await transaction.query(
            """
            update enclave.tenant_migrations set rows_affected = rows_affected + $3, batches = batches + 1,
                   batch_cursor = $4
            where tenant_id = $1 and migration = $2
            """,
            [tenant, file.name, rows, cursor])
    }

    /// Marks the pair done and writes `tenant_migration.applied` to the tenant's audit chain.
    func finish(rows: Int, _ transaction: Transaction) async throws {
        try await transaction.query(
            """
            update enclave.tenant_migrations set status = 'done', finished_at = now(), rows_affected = rows_affected + $3
            where tenant_id = $1 and migration = $2
            """,
            [tenant, file.name, rows])
        try await transaction.audit(
            AuditEvent(
                tenant: tenant, action: .tenantMigrationApplied, objectType: "tenant_migration", objectID: file.name))
    }

    /// Marks the pair failed with `message` (file, line, SQLSTATE and the server's message).
    func fail(_ message: String, _ transaction: Transaction) async throws {
        try await transaction.query(
            """
            insert into enclave.tenant_migrations (tenant_id, migration, status, started_at, attempts, error, checksum)
            values ($1, $2, 'failed', now(), 1, $3, $4)
            on conflict (tenant_id, migration) do update
            set status = 'failed', attempts = enclave.tenant_migrations.attempts + 1, error = $3, finished_at = now()
            """,
            [tenant, file.name, message, file.checksum])
    }
}
