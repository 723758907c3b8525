import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres

/// The access report of issue 29: one patient's 50 leads in a practice of 100,000 leads whose
/// trail holds `events` events, against the same report in a practice whose trail holds 1,000, in
/// one run: p50 of 20 reports each, and their ratio.
///
/// The trail is what a busy practice leaves: three events in ten open one lead (any of them), seven
/// are list reads of 25 leads from the newest at the time (a window that moves through the leads as
/// the trail grows), one in ten is an agency member's, under an agreement. Each of the patient's
/// leads appears in a few hundred events; a report holds several thousand rows.
func patientReportBenchmark(events: Int) async throws {
    try await withBenchDatabase { database, keyFile in
        let bench = try await BenchServices(database, keyFile: keyFile, connections: 4)
        let (maint, keys, services, directory) = (bench.maint, bench.keys, bench.services, bench.directory)
        let registry = PracticeRegistry(keys: keys)
        let superuser = try await database.connect()
        let (owner, member, agency) = try await benchOwnerAndAgencyMember(directory, superuser)
        let poolSize = 100_000
        var practices: [(practice: UUID, size: Int, patient: [UUID])] = []
        for size in [1_000, events] {
            let practice = try await registry.create(name: "Trail \(size)")
            try await directory.grant(user: owner, role: .practiceOwner, practice: practice)
            try await superuser.query(
                """
                insert into enclave.baas (agency_id, practice_id, scopes, status, effective_at, document_sha256, proposed_by)
                values ($1, $2, '{leads.read}', 'active', now() - interval '7 years', sha256('bench'), $3)
                """, [agency, practice, owner])
            let started = Date()
            let source = UUID()
            try await superuser.query(
                "insert into enclave.tracking_sources (tenant_id, id, kind, label) values ($1, $2, 'call', 'Line')",
                [practice, source])
            try await superuser.query("drop table if exists pool")
            try await superuser.query(
                """
                create temp table pool as
                select n as pos, gen_random_uuid() as id from generate_series(1, $1::int) n
                """, [Int32(poolSize)])
            try await superuser.query("alter table pool add primary key (pos)")
            try await superuser.query(
                """
                insert into enclave.leads (tenant_id, id, source_id, kind, occurred_at)
                select $1, p.id, $2, 'call', now() - (7 * 365 * 24 * 60 - p.pos) * interval '1 minute' from pool p
                """, [practice, source])
            try await superuser.query(
                """
                insert into enclave.audit_events
                    (tenant_id, at, actor_id, actor_kind, action, object_type, object_id, outcome, reason, details)
                select $1, now() - ($2 - n) * interval '150 ms', case when n % 10 = 0 then $4 else $3 end, 'user',
                       'phi.read', 'lead',
                       case when n % 10 < 3 then (select p.id::text from pool p where p.pos = 1 + (n * 7919) % $5) end,
                       'ok', case when n % 10 < 3 then 'get' else 'list' end,
                       case when n % 10 < 3 then '{}'::jsonb
                            else jsonb_build_object('leads', (select jsonb_agg(p.id) from pool p
                                                              where p.pos between w.first and w.first + 24)) end
                from generate_series(1, $2::int8) n
                cross join lateral (select 1 + (n * ($5 - 25) / $2)::int as first) w
                """, [practice, Int64(size), owner, member, Int64(poolSize)])
            try await superuser.query("analyze enclave.audit_events")
            try await superuser.query("analyze enclave.leads")
            let patient = try await superuser.query("select id from pool where pos % 2000 = 0 order by pos").map {
                try $0.decode(UUID.self, "id")
            }
            print(String(format: "seeded %d events in %.1f s", size, Date().timeIntervalSince(started)))
            practices.append((practice, size, patient))
        }
        await superuser.close()
        let login = try await services.identity.signInFresh(email: "owner@bench.test", password: "bench password 123")
        var medians: [Double] = []
        for (practice, size, patient) in practices {
            var times: [Double] = []
            var rows = 0
            for _ in 0..<21 {
                let start = Date()
                rows = try await services.patients.report(login.token, practice: practice, leads: patient).count
                times.append(Date().timeIntervalSince(start) * 1000)
            }
            let p50 = median(Array(times.dropFirst()))
            medians.append(p50)
            print(
                String(
                    format: "access report, %2d leads, %9d events in the trail: p50 %7.1f ms (%d rows)", patient.count,
                    size, p50, rows))
        }
        result("patient_report_large_ms", medians[1])
        result("patient_report_large_vs_small", medians[1] / medians[0])
        await services.close()
        await maint.close()
    }
}
