import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@testable import Enclave

@Suite("Agency-wide figures in one query")
struct AgencyFiguresTests {
    @Test(
        "an admin counts every practice in force, assigned or not; a member the assigned ones; a revoked agreement counts nothing"
    )
    func figures() async throws {
        try await IdentityFixture.with { fixture in
            let reports = fixture.services.reports
            let since = Date().addingTimeInterval(-86_400)
            let until = Date().addingTimeInterval(60)
            // The fixture: practice A under an agreement in force, its member assigned, the admin
            // not; practice B with no agreement. Each holds one lead.
            let admin = try await reports.agency(fixture.adminToken, agency: fixture.agency, since: since, until: until)
            #expect(admin.keys.sorted { $0.uuidString < $1.uuidString } == [fixture.practiceA])
            #expect(admin[fixture.practiceA]?.leads == 1)
            #expect(admin[fixture.practiceA]?.calls == 1)
            let member = try await reports.agency(
                fixture.memberToken, agency: fixture.agency, since: since, until: until)
            #expect(member[fixture.practiceA]?.leads == 1)
            // The member's assignment ends: nothing for the member, the admin still counts.
            let superuser = try await fixture.keys.database.connect()
            defer { Task { await superuser.close() } }
            try await superuser.query(
                "delete from enclave.agency_assignments where user_id = $1", [fixture.member])
            #expect(
                try await reports.agency(fixture.memberToken, agency: fixture.agency, since: since, until: until)
                    .isEmpty)
            #expect(
                try await reports.agency(fixture.adminToken, agency: fixture.agency, since: since, until: until).count
                    == 1)
            // The agreement is revoked: the next statement counts nothing.
            try await fixture.agreements.revoke(fixture.ownerAToken, agreement: fixture.baa)
            #expect(
                try await reports.agency(fixture.adminToken, agency: fixture.agency, since: since, until: until).isEmpty
            )
            // Not the agency's own people: refused, whatever their other roles.
            await #expect(throws: AccessError(.forbidden, "only the agency's own people may see its figures")) {
                try await reports.agency(fixture.ownerAToken, agency: fixture.agency, since: since, until: until)
            }
        }
    }

    @Test(
        "the rollup the agency pages read equals the leads: after inserts, qualification, spam, re-encryption and deletes, over whole and partial days"
    )
    func rollupEqualsTheLeads() async throws {
        try await IdentityFixture.with { fixture in
            let superuser = try await fixture.keys.database.connect()
            defer { Task { await superuser.close() } }
            let day = 86_400.0
            let today = (Date().timeIntervalSince1970 / day).rounded(.down) * day
            // 300 more leads of practice A over twelve days, every 53 minutes: three sources,
            // calls and forms, answered, missed and unknown; some qualified with a value, some spam.
            try await superuser.query(
                """
                insert into enclave.leads (tenant_id, source_id, kind, occurred_at, source, medium, campaign, disposition,
                                           duration_seconds, qualification, value_cents)
                select l.tenant_id, l.source_id, case when n % 5 = 0 then 'form' else 'call' end,
                       to_timestamp($2) - n * interval '53 minutes', (array['google', 'bing', null])[n % 3 + 1],
                       (array['cpc', null])[n % 2 + 1], 'c' || (n % 4),
                       (array['answered', 'missed', null])[n % 3 + 1], n % 7 * 10,
                       (array['qualified', 'unqualified', 'spam', null])[n % 4 + 1], n * 100
                from (select * from enclave.leads where tenant_id = $1 limit 1) l, generate_series(1, 300) n
                """, [fixture.practiceA, today + 0.75 * day])
            let value = fixture.services.value
            let reports = fixture.services.reports
            let periods: [(Double, Double)] = [
                (-14, 1), (-3 + 0.2173, -0.5), (-1 + 0.04, -1 + 0.3), (-5, -2), (-2 + 0.5, 0.7), (-7, 0),
            ]
            func agree(_ moment: String) async throws {
                for (from, to) in periods {
                    let since = Date(timeIntervalSince1970: today + from * day)
                    let until = Date(timeIntervalSince1970: today + to * day)
                    // The owner's report of one practice reads the leads; the admin's across
                    // practices reads the rollup. Reports cover whole days; the overview's week
                    // starts at any moment.
                    if from.rounded() == from && to.rounded() == to {
                        let live = try await value.report(
                            fixture.ownerAToken, practice: fixture.practiceA, since: since, until: until)
                        let rolled = try await value.reportAcrossPractices(
                            fixture.adminToken, since: since, until: until)
                        #expect(rolled == live, "\(moment): ROI over \(from) ..< \(to) days")
                        #expect(rolled.rows.count > 1)
                    }
                    let counted = try #require(
                        try await superuser.query(
                            """
                            select count(*) as leads, count(*) filter (where kind = 'call') as calls,
                                   count(*) filter (where kind = 'form') as forms,
                                   count(*) filter (where kind = 'call' and disposition = 'answered') as answered,
                                   count(*) filter (where kind = 'call' and disposition <> 'answered') as missed,
                                   coalesce(sum(duration_seconds), 0) as seconds
                            from enclave.leads where tenant_id = $1 and occurred_at >= $2 and occurred_at < $3
                            """, [fixture.practiceA, since, until]
                        ).first)
                    let figures = try await reports.agency(
                        fixture.adminToken, agency: fixture.agency, since: since, until: until)[fixture.practiceA]
                    let expected = try ["leads", "calls", "forms", "answered", "missed", "seconds"].map {
                        try counted.decode(Int.self, $0)
                    }
                    #expect(
                        [
                            figures?.leads, figures?.calls, figures?.forms, figures?.answered, figures?.missed,
                            figures?.callSeconds,
                        ] == expected.map { $0 }, "\(moment): agency figures over \(from) ..< \(to) days")
                }
            }
            try await agree("after the inserts")
            try await superuser.query(
                """
                update enclave.leads set qualification = case when qualification = 'spam' then 'qualified' else 'spam' end,
                       value_cents = coalesce(value_cents, 0) + 7
                where tenant_id = $1 and extract(minute from occurred_at)::int % 2 = 0
                """, [fixture.practiceA])
            // What re-encryption and redaction do: rewrite rows without changing a figure.
            try await superuser.query(
                "update enclave.leads set caller_number = caller_number where tenant_id = $1", [fixture.practiceA])
            try await agree("after qualification and a rewrite")
            try await superuser.query(
                "delete from enclave.leads where tenant_id = $1 and extract(minute from occurred_at)::int % 3 = 0",
                [fixture.practiceA])
            try await agree("after deletes")
            // A shard may go below zero (a lead counted by one backend, deleted by another); the
            // sum of a group's shards never does.
            #expect(
                try await superuser.query(
                    """
                    select count(*) as n from (
                        select from enclave.lead_figures group by tenant_id, day, source, medium, campaign
                        having sum(leads) < 0 or sum(spam) < 0 or sum(qualified) < 0) negative
                    """
                ).first?.decode(Int.self, "n") == 0)
        }
    }

    @Test(
        "the ROI report across practices: an admin's every practice in force, a member's assigned ones, an owner's own; a revoked agreement counts nothing"
    )
    func valueAcrossPractices() async throws {
        try await IdentityFixture.with { fixture in
            let value = fixture.services.value
            let day = 86_400.0
            let today = (Date().timeIntervalSince1970 / day).rounded(.down) * day
            let since = Date(timeIntervalSince1970: today - 7 * day)
            let until = Date(timeIntervalSince1970: today + day)
            // An owner's report across practices is the report of the owner's practice.
            let own = try await value.reportAcrossPractices(fixture.ownerAToken, since: since, until: until)
            let one = try await value.report(
                fixture.ownerAToken, practice: fixture.practiceA, since: since, until: until)
            #expect(own == one)
            #expect(own.rows.map(\.leads).reduce(0, +) == 1)
            // The admin, not assigned, sees practice A's figures; so does the assigned member.
            let admin = try await value.reportAcrossPractices(fixture.adminToken, since: since, until: until)
            #expect(admin == one)
            let member = try await value.reportAcrossPractices(fixture.memberToken, since: since, until: until)
            #expect(member == one)
            // The agreement is revoked: the next statement counts nothing for the agency.
            try await fixture.agreements.revoke(fixture.ownerAToken, agreement: fixture.baa)
            #expect(try await value.reportAcrossPractices(fixture.adminToken, since: since, until: until).rows.isEmpty)
            #expect(try await value.reportAcrossPractices(fixture.memberToken, since: since, until: until).rows.isEmpty)
            await #expect(throws: AccessError.self) {
                try await value.reportAcrossPractices(fixture.adminToken, since: until, until: since)
            }
        }
    }

    @Test("the role that counts across practices reads no column of leads that holds PHI, and owns only its functions")
    func figuresRole() async throws {
        try await IdentityFixture.with { fixture in
            let superuser = try await fixture.keys.database.connect()
            defer { Task { await superuser.close() } }
            try await superuser.query("set role enclave_figures")
            let count = try await superuser.query("select count(tenant_id)::int8 as n from enclave.leads")
            #expect(try count.first?.decode(Int64.self, "n") == 2)
            for column in [
                "caller_number", "caller_name", "caller_index", "transcript", "form_fields", "page_url", "id",
            ] {
                do {
                    try await superuser.query("select \(column) from enclave.leads limit 1")
                    Issue.record("enclave_figures read leads.\(column)")
                } catch let error as PostgresError {
                    #expect(error.sqlState == "42501", "\(column): \(error.debugDescription)")
                }
            }
            for table in ["recordings", "tenant_keys", "sessions", "users"] {
                await #expect(throws: PostgresError.self) {
                    try await superuser.query("select 1 from enclave.\(table) limit 1")
                }
            }
            try await superuser.query("reset role")
            let owned = try await superuser.query(
                """
                select p.proname from pg_proc p join pg_roles r on r.oid = p.proowner where r.rolname = 'enclave_figures'
                """
            ).map { try $0.decode(String.self, "proname") }
            #expect(
                owned.sorted() == [
                    "agency_figures", "lead_figures_add", "lead_figures_apply", "lead_figures_between",
                    "reachable_value",
                ])
        }
    }
}
