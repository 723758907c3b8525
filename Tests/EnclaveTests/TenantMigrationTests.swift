import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@testable import Enclave

func fixtureDirectory(_ name: String) throws -> URL {
    try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
}

@Suite("Tenant migrations against PostgreSQL")
struct TenantMigrationTests {
    @Test("2,000 practices, a trivial tenant migration: all applied, one row each")
    func twoThousand() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let seeding = ContinuousClock.now
            let practices = try await Seeder(keys: keys).seed(practices: 2000, leadsPerPractice: 0)
            let seeded = ContinuousClock.now - seeding
            let pool = ConnectionPool(
                configuration: try fixture.database.configuration("ENCLAVE_MAINT_DATABASE_URL"),
                options: .init(maxConnections: 5))
            let migrator = try TenantMigrator(
                maintenance: MaintenanceContext(pool: pool), directory: try fixtureDirectory("tenants-trivial"),
                options: .init(jobs: 4))
            let started = ContinuousClock.now
            let outcomes = try await migrator.run()
            let took = ContinuousClock.now - started
            print("tenant migration figure: 2000 practices seeded in \(seeded), migrated with --jobs 4 in \(took)")
            #expect(outcomes.count == 2000)
            #expect(outcomes.allSatisfy { if case .applied = $0.result { true } else { false } })
            #expect(Set(outcomes.map(\.tenant)) == Set(practices))
            let status = try await migrator.status()
            #expect(status.first?.done == 2000)
            #expect(status.first?.pending == 0)
            let superuser = try await fixture.database.connect()
            defer { Task { await superuser.close() } }
            let rows = try await superuser.query(
                "select count(*)::int8 as n, count(distinct tenant_id)::int8 as d, max(attempts) as a from enclave.tenant_migrations"
            )
            #expect(try rows.first?.decode(Int.self, "n") == 2000)
            #expect(try rows.first?.decode(Int.self, "d") == 2000)
            #expect(try rows.first?.decode(Int32.self, "a") == 1)
            // A second run does nothing.
            let again = try await migrator.run()
            #expect(again.allSatisfy { $0.result == .alreadyDone })
            await pool.close()
        }
    }

    @Test(
        "a migration that fails for 3 practices: the others are done, the 3 are named with the error; after the fix only they run"
    )
    func failingTenants() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let practices = try await Seeder(keys: keys).seed(practices: 10, leadsPerPractice: 0)
            let poisoned = Array(practices.shuffled().prefix(3))
            for practice in poisoned {
                try await keys.maintenance.withTenant(practice) {
                    try await $0.query(
                        "insert into enclave.tracking_sources (tenant_id, kind, label) values ($1, 'call', 'poison')",
                        [practice])
                }
            }
            let migrator = try TenantMigrator(
                maintenance: keys.maintenance, directory: try fixtureDirectory("tenants-poison"))
            let first = try await migrator.run()
            let failed = first.filter { if case .failed = $0.result { true } else { false } }
            #expect(Set(failed.map(\.tenant)) == Set(poisoned))
            for outcome in failed {
                guard case .failed(let message) = outcome.result else { continue }
                #expect(message.contains("0001_refuse_poisoned.sql"))
                #expect(message.contains("P0001"))
                #expect(message.contains("poisoned practice"))
            }
            #expect(first.filter { if case .applied = $0.result { true } else { false } }.count == 7)
            for practice in poisoned {
                try await keys.maintenance.withTenant(practice) {
                    try await $0.query(
                        "delete from enclave.tracking_sources where label = 'poison' /* test: cure the poison */")
                }
            }
            let second = try await migrator.run()
            let applied = second.filter { if case .applied = $0.result { true } else { false } }
            #expect(Set(applied.map(\.tenant)) == Set(poisoned))
            #expect(second.filter { $0.result == .alreadyDone }.count == 7)
            let superuser = try await fixture.database.connect()
            defer { Task { await superuser.close() } }
            let attempts = try await superuser.query(
                "select tenant_id, attempts from enclave.tenant_migrations where status = 'done' and attempts = 2")
            #expect(Set(try attempts.map { try $0.decode(UUID.self, "tenant_id") }) == Set(poisoned))
        }
    }

    @Test("a tenant migration without WHERE tenant_id touches only its own practice's rows")
    func confinedByRowLevelSecurity() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let practices = try await Seeder(keys: keys).seed(practices: 2, leadsPerPractice: 5)
            let migrator = try TenantMigrator(
                maintenance: keys.maintenance, directory: try fixtureDirectory("tenants-confined"))
            let outcomes = try await migrator.run(tenants: [practices[0]])
            #expect(outcomes.first?.result == .applied(rows: 5))
            let superuser = try await fixture.database.connect()
            defer { Task { await superuser.close() } }
            let touched = try await superuser.query(
                "select tenant_id, count(*)::int8 as n from enclave.leads where disposition = 'touched-by-migration' group by 1"
            )
            #expect(touched.count == 1)
            #expect(try touched.first?.decode(UUID.self, "tenant_id") == practices[0])
            #expect(try touched.first?.decode(Int.self, "n") == 5)
        }
    }
}
