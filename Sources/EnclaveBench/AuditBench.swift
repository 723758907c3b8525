import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres
import Sealing

/// Audit appends per second, on one chain and across 16, next to plain inserts of the same rows
/// into a table with no chain (the reference), in one run against the dev cluster.
func auditBenchmark() async throws {
    try await withBenchDatabase { database, keyFile in
        let pool = ConnectionPool(
            configuration: try database.configuration("ENCLAVE_MAINT_DATABASE_URL"), options: .init(maxConnections: 16))
        let maintenance = MaintenanceContext(pool: pool)
        let keys = try await KeyManagement.open(masterKeyFile: keyFile, maintenance: maintenance)
        var practices: [UUID] = []
        for index in 0..<16 { practices.append(try await PracticeRegistry(keys: keys).create(name: "Bench \(index)")) }
        let superuser = try await database.connect()
        try await superuser.query("create table public.plain_events (like enclave.audit_events including defaults)")
        try await superuser.query("grant insert on public.plain_events to enclave_maint")
        try await superuser.query("grant usage on schema public to enclave_maint")
        await superuser.close()

        let perTask = 400
        func run(tasks: Int, chains: [UUID], plain: Bool) async throws -> Double {
            let start = Date()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    let chain = chains[task % chains.count]
                    group.addTask {
                        for index in 0..<perTask {
                            try await maintenance.withTenant(chain) { transaction in
                                if plain {
                                    try await transaction.query(
                                        """
                                        insert into public.plain_events (tenant_id, seq, actor_kind, action, object_id, outcome, prev_hash, hash)
                                        values ($1, $2, 'operator', 'key.rotated', $3, 'ok', $4, $4)
                                        """,
                                        [
                                            chain, Int64(task * perTask + index + 1), "\(index)",
                                            [UInt8](repeating: 0, count: 32),
                                        ])
                                } else {
                                    try await transaction.audit(
                                        AuditEvent(tenant: chain, action: .keyRotated, objectID: "\(index)"))
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            return Double(tasks * perTask) / Date().timeIntervalSince(start)
        }
        // Warm up connections and plans.
        _ = try await run(tasks: 16, chains: practices, plain: true)
        var rows: [(String, Double, Double)] = []
        for (label, chains) in [("one chain, 16 writers", [practices[0]]), ("16 chains, 16 writers", practices)] {
            var chained: [Double] = []
            var plain: [Double] = []
            for _ in 0..<3 {
                plain.append(try await run(tasks: 16, chains: chains, plain: true))
                chained.append(try await run(tasks: 16, chains: chains, plain: false))
            }
            rows.append((label, median(chained), median(plain)))
        }
        // The chainer over everything appended above (about 40,000 events), with its checks
        // against a checkpoint log, then the cost of the horizon it reads once per batch.
        let auditKey = try MasterKeyFile.load(path: keyFile)
        let logPath = keyFile + ".checkpoints"
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        let chainer = AuditChainer(
            maintenance: maintenance, key: auditKey, log: CheckpointLog(path: logPath, key: auditKey))
        let chainStart = Date()
        var linked = 0
        while true {
            let pass = try await chainer.linkPending()
            linked += pass.linked
            if pass.linked == 0 { break }
        }
        let chainRate = Double(linked) / Date().timeIntervalSince(chainStart)
        let horizonStart = Date()
        for _ in 0..<200 {
            _ = try await pool.query("select * from enclave_private.audit_horizon()")
        }
        let horizonMilliseconds = Date().timeIntervalSince(horizonStart) * 1000 / 200
        await pool.close()
        print(
            String(
                format: "chainer: %d events linked at %.0f/s (batches of 5,000, checked against the log); "
                    + "the horizon it reads per batch takes %.2f ms", linked, chainRate, horizonMilliseconds))
        result("audit_chainer_events_per_second", chainRate)
        print(
            "Audit appends per second (median of 3 runs of 6,400 transactions each; each append is its own transaction)"
        )
        result("audit_one_chain_ratio", rows[0].1 / rows[0].2)
        result("audit_sixteen_chains_ratio", rows[1].1 / rows[1].2)
        for (label, chained, plain) in rows {
            print(
                String(
                    format: "%-24@ chained %7.0f/s   plain insert %7.0f/s   ratio %.2f", label as NSString, chained,
                    plain,
                    chained / plain))
        }
    }
}
