import Enclave
import EnclaveAPIClient
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import Foundation
import Speech
import Testing

@Suite("Transcripts over HTTPS")
struct TranscriptsHTTPSTests {
    @Test(
        "an agency member reads the redacted transcript and tags, filters by tag and word; keyword sets are the owner's to change; tags are counted per day"
    )
    func redactedForAgencies() async throws {
        try await LiveServer.with { server in
            let (agency, memberID, adminToken, memberToken, ownerToken) = try await AgencyAccessHTTPSTests.growthCo(
                server)
            _ = try await AgencyAccessHTTPSTests.agreementInForce(
                server, agency: agency, member: memberID, adminToken: adminToken, ownerToken: ownerToken)
            let member = try server.client(token: memberToken)
            let owner = try server.client(token: ownerToken)
            let practice = server.practice.uuidString.lowercased()

            let sets = Operations.saveKeywordSet.Input.Path(practiceId: practice)
            let saved = try await owner.saveKeywordSet(
                path: sets, body: .json(.init(name: "insurance", phrases: ["Insurance", "member number"], weight: 2))
            ).ok.body.json
            #expect(saved.phrases == ["insurance", "member number"] && saved.weight == 2)
            _ = try await owner.saveKeywordSet(path: sets, body: .json(.init(name: "Bad!", phrases: ["x"]))).badRequest
            // Agency staff without tracking.manage may not.
            _ = try await member.saveKeywordSet(path: sets, body: .json(.init(name: "x", phrases: ["x"]))).forbidden
            let scratch = try await owner.saveKeywordSet(
                path: sets, body: .json(.init(name: "scratch", phrases: ["x"]))
            )
            .ok.body.json
            _ = try await owner.deleteKeywordSet(path: .init(practiceId: practice, keywordSetId: scratch.id)).noContent
            _ = try await owner.deleteKeywordSet(path: .init(practiceId: practice, keywordSetId: scratch.id)).notFound
            #expect(
                try await member.listKeywordSets(path: .init(practiceId: practice)).ok.body.json.map(\.name) == [
                    "insurance"
                ])

            let call = """
                {"caller_number": "+1 555 010 4477", "caller_name": "Pat Doe", "started_at": "2026-11-28T09:30:00Z",
                 "duration_seconds": 200, "transcript": "hi this is pat doe, my insurance member number is 4471 2290"}
                """
            #expect(try await server.signedCall(call, key: nil).status == 201)
            let worker = TranscriptionWorker(
                maintenance: server.maintenance, keys: server.store, transcriber: try PocketSphinxTranscriber())
            #expect(try await worker.transcribeDue().redacted == 1)

            let leadsPath = Operations.listLeads.Input.Path(practiceId: practice)
            let lead = try #require(try await member.listLeads(path: leadsPath).ok.body.json.leads.first)
            #expect(lead.transcript == nil)
            #expect(lead.transcript_redacted == "hi this is [NAME], my insurance member number is [PHONE]")
            #expect(lead.transcript_status == .done)
            #expect(lead.insights?.tags == ["insurance"] && lead.insights?.suggested_qualification == .qualified)
            let full = try await owner.getLead(path: .init(practiceId: practice, leadId: lead.id)).ok.body.json
            #expect(full.transcript?.contains("pat doe") == true)

            #expect(
                try await member.listLeads(path: leadsPath, query: .init(tag: "insurance")).ok.body.json.leads.count
                    == 1)
            #expect(
                try await member.listLeads(path: leadsPath, query: .init(mentions: "insurance")).ok.body.json.leads
                    .count == 1)
            #expect(
                try await member.listLeads(path: leadsPath, query: .init(mentions: "doe")).ok.body.json.leads.isEmpty)
            _ = try await member.listLeads(path: leadsPath, query: .init(mentions: "4471")).badRequest

            let counts = try await member.tagCounts(
                path: .init(practiceId: practice),
                query: .init(
                    since: Date(timeIntervalSince1970: 1_790_000_000), until: Date().addingTimeInterval(86_400))
            ).ok.body.json
            #expect(counts.map(\.tag) == ["insurance"] && counts.first?.calls == 1)
            _ = try await member.tagCounts(
                path: .init(practiceId: practice), query: .init(since: Date(), until: Date().addingTimeInterval(-1))
            ).badRequest
        }
    }
}
