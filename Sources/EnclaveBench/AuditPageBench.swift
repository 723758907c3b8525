import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres
import Sealing

/// The owner's audit trail page (the newest 200 events and the newest 200 disclosures) on a
/// practice with `events` events, against the same page on a practice with 1,000, in one run: p50
/// of 20 loads each, and their ratio. Nine in ten events are the staff's reads, one in ten an
/// agency member's (disclosures), one in a thousand an export.
func auditPageBenchmark(events: Int) async throws {
    try await withBenchDatabase { database, keyFile in
        let bench = try await BenchServices(database, keyFile: keyFile, connections: 4)
        let (maint, keys, services, directory) = (bench.maint, bench.keys, bench.services, bench.directory)
        let registry = PracticeRegistry(keys: keys)
        let superuser = try await database.connect()
        let (owner, member, agency) = try await benchOwnerAndAgencyMember(directory, superuser)
        var practices: [(UUID, Int)] = []
        for size in [1_000, events] {
            let practice = try await registry.create(name: "Trail \(size)")
            try await directory.grant(user: owner, role: .practiceOwner, practice: practice)
            try await superuser.query(
                """
                insert into enclave.baas (agency_id, practice_id, scopes, status, effective_at, document_sha256, proposed_by)
                values ($1, $2, '{leads.read}', 'active', now() - interval '1 day', sha256('bench'), $3)
                """, [agency, practice, owner])
            let started = Date()
            try await superuser.query(
                """
                insert into enclave.audit_events (tenant_id, at, actor_id, actor_kind, action, object_type, object_id, outcome)
                select $1, now() - ($2 - n) * interval '1 ms',
                       case when n % 10 = 0 then $4 else $3 end, 'user',
                       case when n % 1000 = 0 then 'phi.export' else 'phi.read' end, 'lead', n::text, 'ok'
                from generate_series(1, $2::int8) n
                """, [practice, Int64(size), owner, member])
            try await superuser.query("analyze enclave.audit_events")
            print(String(format: "seeded %d events in %.1f s", size, Date().timeIntervalSince(started)))
            practices.append((practice, size))
        }
        // The reference: the accounting as it was read before this page was paged (every
        // disclosure of the practice, oldest first), timed as the superuser.
        var before: [Double] = []
        for _ in 0..<3 {
            let start = Date()
            _ = try await superuser.query(
                """
                select e.seq, e.at, e.actor_id, u.email, e.action, e.object_type, e.object_id, e.reason, e.details
                from enclave.audit_events e left join enclave.users u on u.id = e.actor_id
                where e.tenant_id = $1 and e.outcome = 'ok'
                  and (e.action in ('phi.export', 'phi.disclosed')
                       or (e.action in ('phi.read', 'recording.played')
                           and not exists (select from enclave.memberships m where m.user_id = e.actor_id and m.practice_id = $1)))
                order by e.seq
                """, [practices[1].0])
            before.append(Date().timeIntervalSince(start) * 1000)
        }
        print(
            String(
                format: "the whole accounting, read as before (reference), %d events: p50 %.1f ms", events,
                median(before)))
        await superuser.close()
        let login = try await services.identity.signInFresh(email: "owner@bench.test", password: "bench password 123")
        var medians: [Double] = []
        for (practice, size) in practices {
            var times: [Double] = []
            for _ in 0..<21 {
                let start = Date()
                let page = try await services.auditLog.practiceEvents(
                    login.token, practice: practice, filter: .init(limit: 200))
                let disclosures = try await services.auditLog.disclosures(login.token, practice: practice, limit: 200)
                times.append(Date().timeIntervalSince(start) * 1000)
                guard page.count == 200, disclosures.count == min(200, size / 10) else {
                    throw ConfigurationError("the page held \(page.count) events and \(disclosures.count) disclosures")
                }
            }
            let p50 = median(Array(times.dropFirst()))
            medians.append(p50)
            print(
                String(
                    format: "audit trail page, %9d events: p50 %7.1f ms (events and disclosures, 200 each)", size, p50))
        }
        result("audit_page_large_ms", medians[1])
        result("audit_page_large_vs_small", medians[1] / medians[0])
        await services.close()
        await maint.close()
    }
}

/// A practice owner (owner@bench.test) and an agency (Bench Agency) with one member
/// (member@agency.test), for the trail benchmarks.
func benchOwnerAndAgencyMember(_ directory: Directory, _ superuser: Connection) async throws -> (
    owner: UUID, member: UUID, agency: UUID
) {
    let owner = try await directory.createUser(
        email: "owner@bench.test", displayName: "Owner", password: "bench password 123")
    let member = try await directory.createUser(
        email: "member@agency.test", displayName: "Member", password: "bench password 123")
    guard
        let agency = try await superuser.query(
            "insert into enclave.agencies (name) values ('Bench Agency') returning id"
        ).first?.decode(UUID.self, "id")
    else { throw ConfigurationError("no agency") }
    try await superuser.query(
        "insert into enclave.memberships (user_id, agency_id, role) values ($1, $2, 'agency_member')",
        [member, agency])
    return (owner, member, agency)
}
