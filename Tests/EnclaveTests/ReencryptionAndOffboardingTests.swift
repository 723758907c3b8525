import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

@Suite("Online re-encryption and offboarding")
struct ReencryptionAndOffboardingTests {
    @Test(
        "re-encryption under concurrent ingest, reads and a redaction: every row on the active version, nothing lost",
        arguments: [1, 4])
    func reencryption(jobs: Int) async throws {
        try await LeadsFixture.with { fixture in
            // The identity fixture's placeholder recording rows have no stream; drop them here.
            try await fixture.base.superuser(
                "delete from enclave.recordings r where not exists (select from enclave.leads l where l.id = r.lead_id and l.recording_header is not null)"
            )
            var expected = Set<String>()
            var first: UUID?
            for index in 0..<60 {
                let name = "Old \(index)"
                expected.insert(name)
                let lead = try await fixture.ingest.ingestCall(try fixture.request(fixture.call(name)))
                if first == nil { first = lead.leadID }
            }
            let recordingLead = try #require(first)
            let audio = try SecureRandom.bytes(300_000)
            _ = try await fixture.ingest.attachRecording(
                sourceID: fixture.source,
                signature: try IngestSignature.sign(
                    audio, secret: fixture.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                leadID: recordingLead, contentType: "audio/mpeg", body: ChunkedBytes(audio, pieceSize: 50_000))
            _ = try await fixture.keys.rotate(tenants: [fixture.base.practiceA])
            let redacted = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("To Redact")))

            let reencryptor = Reencryptor(keys: try await fixture.base.keys.keys(), batchSize: 10)
            let started = ContinuousClock.now
            let report = try await withThrowingTaskGroup(of: Reencryptor.Report?.self) { group in
                group.addTask { try await reencryptor.reencrypt(fixture.base.practiceA, jobs: jobs) }
                group.addTask {
                    for index in 0..<30 {
                        _ = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("New \(index)")))
                    }
                    return nil
                }
                group.addTask {
                    for _ in 0..<15 {
                        _ = try await fixture.leads.list(
                            fixture.base.memberToken, practice: fixture.base.practiceA, filter: .init(limit: 100))
                    }
                    try await fixture.leads.redact(
                        fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: redacted.leadID,
                        fields: [.callerName])
                    return nil
                }
                return try await group.reduce(into: [Reencryptor.Report]()) { if let report = $1 { $0.append(report) } }
                    .first
            }
            let took = ContinuousClock.now - started
            let moved = try #require(report)
            print(
                "re-encryption figure: \(moved.rows) rows and \(moved.recordings) recordings in \(took) under concurrent ingest and reads"
            )
            #expect(moved.rows >= 60)
            #expect(moved.recordings == 1)
            #expect(moved.unusedVersions == [1])
            for index in 0..<30 { expected.insert("New \(index)") }

            let superuser = try await fixture.base.keys.database.connect()
            defer { Task { await superuser.close() } }
            let stale = try await superuser.query(
                """
                select (select count(*) from enclave.leads where tenant_id = $1 and dek_version is not null and dek_version <> 2)::int8 as leads,
                       (select count(*) from enclave.recordings where tenant_id = $1 and dek_version <> 2)::int8 as chunks
                """, [fixture.base.practiceA])
            #expect(try stale.first?.decode(Int.self, "leads") == 0)
            #expect(try stale.first?.decode(Int.self, "chunks") == 0)
            var names = Set<String>()
            var cursor: String?
            repeat {
                let page = try await fixture.leads.list(
                    fixture.base.ownerAToken, practice: fixture.base.practiceA,
                    filter: .init(kind: "call", cursor: cursor, limit: 100))
                names.formUnion(page.leads.compactMap(\.callerName))
                cursor = page.nextCursor
            } while cursor != nil
            #expect(names == expected, "lost: \(expected.subtracting(names)), extra: \(names.subtracting(expected))")
            let afterRedaction = try await fixture.leads.get(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: redacted.leadID)
            #expect(afterRedaction.callerName == nil, "the concurrent redaction was overwritten")
            var played: [UInt8] = []
            try await fixture.leads.streamRecording(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: recordingLead
            ) { played += $0 }
            #expect(played == audio)
        }
    }

    @Test(
        "after offboarding: no key opens anything, PHI rows are gone, every way in is closed, the audit chain verifies, the export opens"
    )
    func offboarding() async throws {
        try await LeadsFixture.with { fixture in
            var names = Set<String>()
            var callLead: UUID?
            for index in 0..<5 {
                let name = "Exported \(index)"
                names.insert(name)
                callLead = try await fixture.ingest.ingestCall(try fixture.request(fixture.call(name))).leadID
            }
            let audio = try SecureRandom.bytes(150_000)
            let lead = try #require(callLead)
            _ = try await fixture.ingest.attachRecording(
                sourceID: fixture.source,
                signature: try IngestSignature.sign(
                    audio, secret: fixture.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                leadID: lead, contentType: "audio/wav", body: ChunkedBytes(audio, pieceSize: 40_000))
            let superuser = try await fixture.base.keys.database.connect()
            defer { Task { await superuser.close() } }
            let sealed = try #require(
                try await superuser.query("select caller_name from enclave.leads where id = $1", [lead]).first?.decode(
                    [UInt8].self, "caller_name"))

            let path = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-export-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: path) }
            let keys = try await fixture.base.keys.keys()
            let report = try await Offboarding(keys: keys).offboard(
                fixture.base.practiceA, export: (path, .passphrase("the practice's own passphrase", logN: 12)))
            #expect(report.exportedLeads == 6)  // five calls and the fixture's seed lead
            #expect(report.exportedRecordings == 1)
            #expect(report.agreementsRevoked == 1)
            #expect(report.keysDestroyed == 2)
            #expect(report.masterKeyVersions == [1])
            #expect(report.leadsDeleted == 6)

            // No key of the practice opens anything.
            let keyRows = try await superuser.query(
                "select count(*) filter (where wrapped is not null)::int8 as live from enclave.tenant_keys where tenant_id = $1",
                [fixture.base.practiceA])
            #expect(try keyRows.first?.decode(Int.self, "live") == 0)
            await #expect(throws: SealingError(.keyUnavailable, "")) {
                try await keys.maintenance.withTenant(fixture.base.practiceA) { transaction in
                    try await keys.store.keys(fixture.base.practiceA, in: transaction).open(
                        sealed,
                        for: FieldContext(
                            tenantID: fixture.base.practiceA, table: "leads", column: "caller_name", rowID: lead))
                }
            }
            // PHI rows gone; the other practice untouched.
            let counts = try await superuser.query(
                """
                select (select count(*) from enclave.leads where tenant_id = $1)::int8 as a_leads,
                       (select count(*) from enclave.recordings where tenant_id = $1)::int8 as a_chunks,
                       (select count(*) from enclave.tracking_sources where tenant_id = $1)::int8 as a_sources,
                       (select count(*) from enclave.leads where tenant_id = $2)::int8 as b_leads,
                       (select status from enclave.practices where id = $1) as status
                """,
                [fixture.base.practiceA, fixture.base.practiceB])
            #expect(try counts.first?.decode(Int.self, "a_leads") == 0)
            #expect(try counts.first?.decode(Int.self, "a_chunks") == 0)
            #expect(try counts.first?.decode(Int.self, "a_sources") == 0)
            #expect(try counts.first?.decode(Int.self, "b_leads") == 1)
            #expect(try counts.first?.decode(String.self, "status") == "offboarded")
            // Every way in is closed: sessions of members and assigned staff, the BAA, ingest.
            await #expect(throws: AccessError.self) {
                try await fixture.leads.list(fixture.base.memberToken, practice: fixture.base.practiceA)
            }
            await #expect(throws: AccessError(.unauthenticated, "sign in again: the session is not valid")) {
                try await fixture.base.identity.sessions(fixture.base.ownerAToken)
            }
            await #expect(throws: AccessError(.unauthenticated, "the signature does not match this source's secret")) {
                try await fixture.ingest.ingestCall(try fixture.request(fixture.call("After")))
            }
            // The audit chain stays and still verifies.
            let verified = try await keys.maintenance.linkAndVerify(chains: [
                fixture.base.practiceA
            ])
            #expect(verified.breaks.isEmpty)
            let actions = try await superuser.query(
                "select action from enclave.audit_events where tenant_id = $1 order by seq", [fixture.base.practiceA]
            ).map { try $0.decode(String.self, "action") }
            #expect(actions.contains("phi.export"))
            #expect(actions.contains("key.destroyed"))
            // Offboarding closed the chain's story; the refused attempts above came after it.
            let offboarded = try #require(actions.firstIndex(of: "tenant.offboarded"))
            #expect(actions[offboarded...].dropFirst().allSatisfy { $0 == "access.denied" })
            // The export opens with Debian's age and the practice's passphrase, and only with it: a
            // tar of leads.json, leads.csv and the recording as an audio file.
            let work = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-open-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: work) }
            #expect(
                try !AgeTool.decrypt(
                    path, passphrase: "a guessed passphrase!", to: work.appendingPathComponent("wrong").path))
            let tar = work.appendingPathComponent("export.tar").path
            #expect(try AgeTool.decrypt(path, passphrase: "the practice's own passphrase", to: tar))
            try AgeTool.untar(tar, into: work.appendingPathComponent("out"))
            let json = try #require(
                FileManager.default.contents(atPath: work.appendingPathComponent("out/leads.json").path))
            let leads = try #require(try JSONSerialization.jsonObject(with: json) as? [[String: String]])
            #expect(leads.count == 6)
            #expect(Set(leads.compactMap { $0["caller_name"] }) == names)
            let csv = String(
                decoding: try #require(
                    FileManager.default.contents(atPath: work.appendingPathComponent("out/leads.csv").path)),
                as: UTF8.self)
            #expect(csv.split(separator: "\r\n").count == 7)
            let recording = FileManager.default.contents(
                atPath: work.appendingPathComponent("out/recordings/\(lead.uuidString.lowercased()).wav").path)
            #expect(recording.map(Array.init) == audio)
        }
    }
}

@Suite("Master key rotation covers every wrapped secret")
struct MasterWrappedSecretTests {
    @Test("after rotate-master and destroy-master of the old version, MFA sign-in and signed ingest still work")
    func totpAndIngestSurvive() async throws {
        try await LeadsFixture.with { fixture in
            let keys = try await fixture.base.keys.keys()
            // Before re-wrapping, the old version may not be destroyed: secrets depend on it.
            let added = try keys.masterKeys.addingVersion()
            try await MasterKeyRegistry.activate(added.version, provider: added.file, pool: keys.maintenance.pool)
            let midway = try await fixture.base.keys.keys()
            _ = try await midway.rotateMaster()
            let rotated = try await fixture.base.keys.keys()
            try await rotated.destroyMaster(version: 1)
            #expect(try MasterKeyFile.load(path: fixture.base.keys.keyFile).versions == [2])

            // A fresh process: new key caches, only master key version 2 on disk.
            let fresh = try await fixture.base.keys.keys()
            let identity = IdentityService(
                pool: fixture.base.identity.pool, authPool: fixture.base.identity.authPool,
                masterKeys: fresh.masterKeys,
                masterKeyVersion: fresh.activeMasterVersion,
                policy: .init(passwordCost: .testing))
            let login = try await identity.login(email: "member@agency.test", password: IdentityFixture.password)
            try await identity.verifyMFA(
                login.token, code: try await IdentityFixture.code(fixture.base.keys, "member@agency.test", step: 3),
                at: IdentityFixture.start.addingTimeInterval(90))
            let ingest = IngestService(
                pool: fixture.base.identity.pool, keys: TenantKeyStore(provider: fresh.masterKeys))
            let result = try await ingest.ingestCall(try fixture.request(fixture.call("After Rotation")))
            #expect(result.created)
        }
    }
}
