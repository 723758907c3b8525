import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// Qualification, ad spend, the ROI report and the conversion export, against PostgreSQL.
@Suite("Lead value: qualification, spend, ROI and conversions")
struct LeadValueTests {
    struct Seeded {
        let id: UUID
        let day: String
        let source: String
        let campaign: String
        let gclid: String?
        var qualification: LeadValue.Qualification?
        var value: Int64
    }

    static func call(_ fixture: LeadsFixture, _ index: Int, _ lead: Seeded) async throws -> UUID {
        let json = """
            {"caller_number": "+1555867\(String(format: "%04d", index))", "caller_name": "Pat Private \(index)",
             "started_at": "\(lead.day)T15:00:00Z",
             "attribution": {"source": "\(lead.source)", "medium": "cpc", "campaign": "\(lead.campaign)"\(lead.gclid.map { ", \"gclid\": \"\($0)\"" } ?? "")}}
            """
        return try await fixture.ingest.ingestCall(try fixture.request(json)).leadID
    }

    @Test(
        "the report equals a reference computed from the seeded leads and spend; marking and spend are checked by the database"
    )
    func report() async throws {
        try await LeadsFixture.with(scopes: [.leadsRead, .recordingsListen, .leadsExport]) { fixture in
            let base = fixture.base
            let value = LeadValue(access: base.access, agreements: base.agreements)
            var seeded = [
                Seeded(
                    id: UUID(), day: "2026-11-17", source: "google", campaign: "implants", gclid: "G-1",
                    qualification: .qualified, value: 250_000),
                Seeded(
                    id: UUID(), day: "2026-11-18", source: "google", campaign: "implants", gclid: "G-2",
                    qualification: .unqualified, value: 0),
                Seeded(
                    id: UUID(), day: "2026-11-19", source: "google", campaign: "whitening", gclid: nil,
                    qualification: .qualified, value: 40_000),
                Seeded(
                    id: UUID(), day: "2026-11-24", source: "google", campaign: "implants", gclid: "G-3",
                    qualification: .qualified, value: 300_000),
                Seeded(
                    id: UUID(), day: "2026-11-25", source: "facebook", campaign: "spring", gclid: nil,
                    qualification: .spam, value: 0),
                Seeded(
                    id: UUID(), day: "2026-11-26", source: "facebook", campaign: "spring", gclid: nil,
                    qualification: nil, value: 0),
            ]
            for index in seeded.indices {
                let id = try await Self.call(fixture, index, seeded[index])
                seeded[index] = Seeded(
                    id: id, day: seeded[index].day, source: seeded[index].source, campaign: seeded[index].campaign,
                    gclid: seeded[index].gclid, qualification: seeded[index].qualification, value: seeded[index].value)
                if let qualification = seeded[index].qualification {
                    try await value.qualify(
                        base.ownerAToken, practice: base.practiceA, lead: id, as: qualification,
                        valueCents: seeded[index].value)
                }
            }
            // The agency member's agreement does not grant leads.qualify.
            await #expect(throws: AccessError(.forbidden, "you do not have access to this practice's data")) {
                try await value.qualify(
                    base.memberToken, practice: base.practiceA, lead: seeded[5].id, as: .qualified, valueCents: 1)
            }
            // Spend: the agency's admin records it; a member or another practice's owner may not.
            try await value.recordSpend(
                base.adminToken, practice: base.practiceA, month: "2026-11", source: "google", amountCents: 30_000)
            try await value.recordSpend(
                base.adminToken, practice: base.practiceA, month: "2026-11", source: "facebook", amountCents: 9_000)
            for stranger in [
                base.memberToken, try await IdentityFixture.signInWithMFA(base.identity, base.keys, "owner@b.test"),
            ] {
                await #expect(
                    throws: AccessError(
                        .forbidden, "ad spend is recorded by an admin of an agency with an agreement in force")
                ) {
                    try await value.recordSpend(
                        stranger, practice: base.practiceA, month: "2026-11", source: "google", amountCents: 1)
                }
            }

            let day = { (text: String) in try #require(ISO8601DateFormatter().date(from: text + "T00:00:00Z")) }
            let report = try await value.report(
                base.memberToken, practice: base.practiceA, since: try day("2026-11-16"), until: try day("2026-11-30"))

            // The reference, from what was seeded: spam is left out; spend is each month's amount
            // spread evenly over its days (November: 30), seven days a week.
            let counted = seeded.filter { $0.qualification != .spam }
            let weekOf = { (text: String) in text < "2026-11-23" ? "2026-11-16" : "2026-11-23" }
            for week in ["2026-11-16", "2026-11-23"] {
                for source in ["google", "facebook"] {
                    let these = counted.filter { weekOf($0.day) == week && $0.source == source }
                    let row = report.sources.first {
                        $0.week == (try? day(week)) && $0.source == source
                    }
                    let spend: Int64 = source == "google" ? 7_000 : 2_100
                    #expect(row?.leads == these.count, "\(week) \(source) leads")
                    #expect(row?.qualified == these.filter { $0.qualification == .qualified }.count)
                    #expect(
                        row?.valueCents == these.filter { $0.qualification == .qualified }.map(\.value).reduce(0, +))
                    #expect(row?.spendCents == spend, "\(week) \(source) spend")
                    if let row, row.leads > 0 {
                        #expect(row.costPerLeadCents == (spend + Int64(row.leads) / 2) / Int64(row.leads))
                    }
                }
            }
            let implants = report.rows.filter { $0.campaign == "implants" }
            #expect(implants.map(\.leads).reduce(0, +) == 3)
            #expect(implants.map(\.valueCents).reduce(0, +) == 550_000)

            // The conversion export: qualified leads with a click id, their value and time. No PHI.
            let conversions = try await value.conversions(
                base.ownerAToken, practice: base.practiceA, since: try day("2026-11-16"), until: try day("2026-11-30"))
            #expect(conversions.map(\.gclid) == ["G-1", "G-3"])
            #expect(conversions.map(\.valueCents) == [250_000, 300_000])
            let csv = LeadValue.googleAdsCSV(conversions, conversionName: "Booked patient")
            #expect(csv.contains(#""G-1","Booked patient","2026-11-17 15:00:00",2500.00,USD"#))
            #expect(!csv.contains("Private") && !csv.contains("555867"))
            let exported = try await AuditLog(identity: base.identity).practiceEvents(
                base.ownerAToken, practice: base.practiceA, filter: .init(action: .conversionsExported))
            #expect(exported.count == 1)
            let marked = try await AuditLog(identity: base.identity).practiceEvents(
                base.ownerAToken, practice: base.practiceA, filter: .init(action: .leadQualified))
            #expect(marked.count == 5)
        }
    }
}
