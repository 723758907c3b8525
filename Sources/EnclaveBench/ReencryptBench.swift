import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres
import Sealing

/// Re-encryption rows per second (release build) at --jobs 1, 2 and 4: each round rotates every
/// practice's data key, then moves every lead to the new version. Four practices show the
/// parallelism across practices; one practice with all the rows shows it within one.
func reencryptBenchmark(practices: Int = 4, leads: Int = 25_000) async throws {
    try await withBenchDatabase { database, keyFile in
        let pool = ConnectionPool(
            configuration: try database.configuration("ENCLAVE_MAINT_DATABASE_URL"), options: .init(maxConnections: 8))
        let keys = try await KeyManagement.open(masterKeyFile: keyFile, maintenance: MaintenanceContext(pool: pool))
        let seeder = Seeder(keys: keys)
        let many = try await seeder.seed(practices: practices, leadsPerPractice: leads, namePrefix: "Many")
        let one = try await seeder.seed(practices: 1, leadsPerPractice: practices * leads, namePrefix: "One")
        print(
            "Re-encryption, rows per second (\(practices) practices × \(leads) leads, and 1 practice × \(practices * leads))"
        )
        for (label, tenants) in [("\(practices) practices", many), ("1 practice  ", one)] {
            var line = "  \(label)"
            for jobs in [1, 2, 4] {
                _ = try await keys.rotate(tenants: tenants)
                let started = ContinuousClock.now
                let reports = try await Reencryptor(keys: keys).reencrypt(tenants: tenants, jobs: jobs)
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let rows = reports.map(\.rows).reduce(0, +)
                guard rows == tenants.count * (tenants.count == 1 ? practices * leads : leads) else {
                    throw ConfigurationError("re-encryption moved \(rows) rows, not all of them")
                }
                line += String(format: "   --jobs %d: %7.0f rows/s", jobs, Double(rows) / seconds)
                result(
                    "reencrypt_\(tenants.count == 1 ? "one" : "many")_jobs\(jobs)_rows_per_s", Double(rows) / seconds)
            }
            print(line)
        }
        await pool.close()
    }
}
