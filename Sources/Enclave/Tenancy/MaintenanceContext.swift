import Foundation
import Postgres

/// Units of work as `enclave_maint`, each confined by row-level security to one tenant.
///
/// The first statement of each transaction binds the tenant with `set_config(…, true)`
/// (transaction-local, so it is safe behind a transaction-mode pooler); the database gate
/// admits that tenant only to a session logged in as `enclave_maint`.
public struct MaintenanceContext: Sendable {
    /// Connections as `enclave_maint`.
    public let pool: ConnectionPool

    public init(pool: ConnectionPool) {
        self.pool = pool
    }

    /// Runs `body` in one transaction that can reach `tenantID`'s rows and no other tenant's.
    @discardableResult
    public func withTenant<T: Sendable>(_ tenantID: UUID, _ body: (Transaction) async throws -> T) async throws -> T {
        try await pool.withTransaction { transaction in
            try await transaction.query(
                "select set_config('enclave.maint_tenant', $1, true)", [tenantID.uuidString.lowercased()])
            return try await body(transaction)
        }
    }

    /// Every practice's id, in a stable order.
    public func tenantIDs() async throws -> [UUID] {
        try await pool.query("select id from enclave.practices order by id").map { try $0.decode(UUID.self, "id") }
    }

    /// Runs `body` for each tenant in `tenantIDs`, printing progress through `progress` every
    /// tenth of the way, and returns the results in order.
    public func forEachTenant<T: Sendable>(
        _ tenantIDs: [UUID],
        progress: (String) -> Void = { _ in },
        _ body: (UUID, Transaction) async throws -> T
    ) async throws -> [T] {
        var results: [T] = []
        results.reserveCapacity(tenantIDs.count)
        let step = max(1, tenantIDs.count / 10)
        for (index, tenantID) in tenantIDs.enumerated() {
            results.append(try await withTenant(tenantID) { try await body(tenantID, $0) })
            if tenantIDs.count >= 20, (index + 1) % step == 0 {
                progress("\(index + 1)/\(tenantIDs.count) practices")
            }
        }
        return results
    }
}
