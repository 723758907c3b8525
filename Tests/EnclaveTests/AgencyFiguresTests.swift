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
            #expect(owned.sorted() == ["agency_figures", "reachable_value"])
        }
    }
}
