import Foundation
import Postgres
import Sealing

/// Creates many practices with many leads quickly, for tests, benchmarks and the demo. Leads
/// carry synthetic (not real) PHI, sealed exactly as ingest seals it.
public struct Seeder: Sendable {
    public let keys: KeyManagement

    public init(keys: KeyManagement) {
        self.keys = keys
    }

    /// Creates `practices` practices, each with one call source and `leadsPerPractice` leads;
    /// returns their ids. Practices go in batches; each practice's keys and leads in its own
    /// transaction (row-level security confines each to its practice), `jobs` practices at once.
    public func seed(
        practices count: Int, leadsPerPractice: Int, namePrefix: String = "Seeded Practice", jobs: Int = 1,
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> [UUID] {
        guard (1...100_000).contains(count), (0...10_000_000).contains(leadsPerPractice) else {
            throw ConfigurationError("seed 1 to 100000 practices with 0 to 10000000 leads each")
        }
        let ids = (0..<count).map { _ in UUID() }
        for start in stride(from: 0, to: count, by: 1000) {
            let slice = Array(ids[start..<min(start + 1000, count)])
            try await keys.maintenance.pool.query(
                "insert into enclave.practices (id, name) select unnest($1::uuid[]), $2 || ' ' || generate_series($3::int8, $4::int8)",
                [slice, namePrefix, start + 1, start + slice.count])
        }
        let store = keys.store
        let master = keys.activeMasterVersion
        _ = try await keys.maintenance.forEachTenant(
            ids, jobs: jobs, progress: { state, _ in progress(state.finished) }
        ) { practice in
            try await keys.maintenance.withTenant(practice) { transaction in
                try await store.provision(practice, masterKeyVersion: master, in: transaction)
                try await transaction.audit(
                    AuditEvent(
                        tenant: practice, action: .tenantCreated, objectType: "practice",
                        objectID: practice.uuidString.lowercased()))
                let source = UUID()
                try await transaction.query(
                    """
                    insert into enclave.tracking_sources (tenant_id, id, kind, label, default_source, default_medium, default_campaign)
                    values ($1, $2, 'call', 'Main line', 'google', 'cpc', 'new patients')
                    """,
                    [practice, source])
                guard leadsPerPractice > 0 else { return }
                let writer = LeadWriter(
                    practice: practice, source: source, keys: try await store.keys(practice, in: transaction))
                let started = Date()
                for batchStart in stride(from: 0, to: leadsPerPractice, by: 1000) {
                    let batch = (batchStart..<min(batchStart + 1000, leadsPerPractice)).map { n in
                        var lead = NewLead(kind: .call)
                        lead.occurredAt = started.addingTimeInterval(-420 * Double(n - batchStart + 1))
                        lead.attribution = Attribution(source: "google", medium: "cpc", campaign: "new patients")
                        lead.durationSeconds = Int32(30 + n % 300)
                        lead.disposition = "answered"
                        lead.callerNumber = String(format: "+1555%07d", n % 10_000_000)
                        lead.callerName = "Synthetic Caller \(n)"
                        return lead
                    }
                    _ = try await writer.insert(batch, in: transaction)
                }
            }
        }
        return ids
    }
}
