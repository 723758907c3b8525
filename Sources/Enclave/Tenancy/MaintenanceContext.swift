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

    /// Progress across tenants, reported after each one.
    public struct Progress: Sendable {
        /// Tenants finished so far, in any order.
        public let finished: Int
        public let total: Int
        public let elapsed: Duration
    }

    /// Runs `body` for each tenant, `jobs` tenants at a time, and returns the results in the
    /// order of `tenantIDs`. `progress` hears of each tenant as it finishes, with its result. The
    /// first error stops the run (tenants in flight finish their current step).
    public func forEachTenant<T: Sendable>(
        _ tenantIDs: [UUID],
        jobs: Int = 1,
        progress: @escaping @Sendable (Progress, T) -> Void = { _, _ in },
        _ body: @escaping @Sendable (UUID) async throws -> T
    ) async throws -> [T] {
        let next = Locked(0)
        let finished = Locked(0)
        let started = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: [(Int, T)].self) { group in
            for _ in 0..<min(max(jobs, 1), max(tenantIDs.count, 1)) {
                group.addTask {
                    var done: [(Int, T)] = []
                    while true {
                        let index = next.withLock { value in
                            defer { value += 1 }
                            return value
                        }
                        guard index < tenantIDs.count else { return done }
                        let result = try await body(tenantIDs[index])
                        done.append((index, result))
                        let count = finished.withLock { value in
                            value += 1
                            return value
                        }
                        progress(
                            Progress(finished: count, total: tenantIDs.count, elapsed: ContinuousClock.now - started),
                            result)
                    }
                }
            }
            return try await group.reduce(into: [(Int, T)]()) { $0 += $1 }
        }
        return results.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Runs `body` for each tenant in its own transaction in that tenant's context, `jobs` at a
    /// time, reporting a line through `progress` every tenth of the way (from 20 tenants on);
    /// returns the results in the order of `tenantIDs`.
    public func forEachTenant<T: Sendable>(
        _ tenantIDs: [UUID],
        jobs: Int = 1,
        progress: @escaping @Sendable (String) -> Void = { _ in },
        _ body: @escaping @Sendable (UUID, Transaction) async throws -> T
    ) async throws -> [T] {
        let step = max(1, tenantIDs.count / 10)
        return try await forEachTenant(
            tenantIDs, jobs: jobs,
            progress: { (state: Progress, _: T) in
                if state.total >= 20, state.finished % step == 0 {
                    progress("\(state.finished)/\(state.total) practices")
                }
            },
            { tenantID in try await withTenant(tenantID) { try await body(tenantID, $0) } })
    }
}
