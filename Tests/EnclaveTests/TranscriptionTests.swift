import Enclave
import EnclaveSpeechCorpus
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Speech
import Testing

/// One pocketsphinx for the whole suite: loading the model takes a cooperative thread for a
/// moment, and the decoder serves one call at a time anyway.
let sharedTranscriber = Result { try PocketSphinxTranscriber() }

extension LeadsFixture {
    /// The transcription worker as the maintenance role, with pocketsphinx.
    func transcriptionWorker() throws -> TranscriptionWorker {
        TranscriptionWorker(maintenance: keys.maintenance, keys: keys.store, transcriber: try sharedTranscriber.get())
    }

    /// A call from `script`'s caller with its telephone audio as the recording.
    func scriptedCall(_ script: ScriptedCall, dualChannel: Bool = false) async throws -> UUID {
        let lead = try await ingest.ingestCall(
            try request(call(script.callerName, number: script.phoneNumber))
        ).leadID
        // flite and sox run as child processes: waited for on a Dispatch thread, not a cooperative one.
        let audio = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try script.telephoneAudio(dualChannel: dualChannel) })
            }
        }
        _ = try await ingest.attachRecording(
            sourceID: source,
            signature: try IngestSignature.sign(audio, secret: secret, timestamp: Int64(Date().timeIntervalSince1970)),
            leadID: lead, contentType: "audio/wav", body: ChunkedBytes(audio, pieceSize: 64_000))
        return lead
    }

    /// Every row of every table of the database as text, as a superuser sees it.
    func everyTable() async throws -> String {
        let superuser = try await base.keys.database.connect()
        defer { Task { await superuser.close() } }
        let tables = try await superuser.query(
            """
            select format('%I.%I', schemaname, tablename) as name from pg_tables
            where schemaname in ('enclave', 'enclave_private', 'enclave_meta')
            """
        ).map { try $0.decode(String.self, "name") }
        var dump = ""
        for table in tables {
            // Table names come from the catalog.
            dump +=
                try await superuser.query(
                    "select coalesce(string_agg(t::text, E'\\n'), '') as d from \(table) t /* test: canary dump */"
                ).first?.decode(String.self, "d") ?? ""
        }
        return dump
    }
}

/// Four or more number words in a row: a number the redaction missed.
func hasNumberRun(_ text: String) -> Bool {
    let digits: Set<String> = ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    var run = 0
    for word in text.lowercased().split(whereSeparator: { !$0.isLetter }) {
        run = digits.contains(String(word)) ? run + 1 : 0
        if run >= 4 { return true }
    }
    return false
}

@Suite("Transcription on our own machines: sealed, redacted for agencies, tagged and searchable")
struct TranscriptionTests {
    @Test(
        "a scripted call's recording becomes a sealed transcript and a redacted one; an agency member reads only the redacted one, the owner both"
    )
    func scriptedCall() async throws {
        try await LeadsFixture.with { fixture in
            // The greeting, the caller's name and reason, and the date of birth (about 20 s).
            let script = ScriptedCall.corpus(count: 1)[0].prefix(4)
            let lead = try await fixture.scriptedCall(script)
            let worker = try fixture.transcriptionWorker()
            let pass = try await worker.transcribeDue()
            #expect(pass.transcribed == 1 && pass.unreadable == 0)
            #expect(pass.seconds > 10)
            // Done once: the next pass finds nothing.
            #expect(try await worker.transcribeDue() == TranscriptionWorker.Summary())

            let owner = try await fixture.leads.get(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: lead)
            let transcript = try #require(owner.transcript)
            let redacted = try #require(owner.redactedTranscript)
            #expect(owner.transcriptStatus == "done")
            // Most of what was said was heard.
            let heard = Set(KeywordSet.normalise(transcript).split(separator: " ").map(String.init))
            let said = Set(KeywordSet.normalise(script.text).split(separator: " ").map(String.init))
            #expect(Double(said.intersection(heard).count) / Double(said.count) > 0.5, "\(transcript)")
            // The redacted form keeps the conversation and loses the caller's name and numbers.
            #expect(redacted != transcript)
            #expect(redacted.contains("[NAME]") || redacted.contains("[DATE]"))
            for part in script.callerName.lowercased().split(separator: " ") {
                #expect(!redacted.lowercased().contains(part), "\(redacted)")
            }
            #expect(!hasNumberRun(redacted), "\(redacted)")
            #expect(redacted.contains("appointment") || redacted.contains("patient"))

            let member = try await fixture.leads.get(
                fixture.base.memberToken, practice: fixture.base.practiceA, lead: lead)
            #expect(member.transcript == nil)
            #expect(member.redactedTranscript == redacted)

            // Sealed: neither form is in the table in clear; each opens only as its own column.
            let dump = try await fixture.everyTable()
            #expect(!dump.contains(transcript) && !dump.contains(redacted))
            let created = try await fixture.base.keys.database.connect()
            defer { Task { await created.close() } }
            let events = try await created.query(
                "select details from enclave.audit_events where action = 'transcript.created' and object_id = $1",
                [lead.uuidString.lowercased()])
            #expect(events.count == 1)
        }
    }

    @Test("two channels become turns, the caller's and the practice's, in the order they were said")
    func dualChannel() async throws {
        try await LeadsFixture.with { fixture in
            let lead = try await fixture.scriptedCall(ScriptedCall.corpus(count: 2)[1].prefix(6), dualChannel: true)
            #expect(try await fixture.transcriptionWorker().transcribeDue().transcribed == 1)
            let owner = try await fixture.leads.get(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: lead)
            let lines = try #require(owner.transcript).split(separator: "\n")
            #expect(lines.first?.hasPrefix("Practice: ") == true, "\(lines)")
            #expect(lines.contains { $0.hasPrefix("Caller: ") })
            #expect(lines.count >= 4)
        }
    }

    @Test("a recording the worker cannot decode (an MP3) is marked unreadable once, and not tried again")
    func unreadable() async throws {
        try await LeadsFixture.with { fixture in
            let lead = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Mo Three"))).leadID
            let audio = Array("ID3".utf8) + (try SecureRandom.bytes(50_000))
            _ = try await fixture.ingest.attachRecording(
                sourceID: fixture.source,
                signature: try IngestSignature.sign(
                    audio, secret: fixture.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                leadID: lead, contentType: "audio/mpeg", body: ChunkedBytes(audio, pieceSize: 20_000))
            let worker = try fixture.transcriptionWorker()
            #expect(try await worker.transcribeDue().unreadable == 1)
            #expect(try await worker.transcribeDue() == TranscriptionWorker.Summary())
            let read = try await fixture.leads.get(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: lead)
            #expect(read.transcriptStatus == "unreadable" && read.transcript == nil && read.redactedTranscript == nil)
        }
    }

    @Test("an agreement that grants transcripts.full shows agency staff the full transcript too")
    func fullScope() async throws {
        try await LeadsFixture.with(scopes: [.leadsRead, .transcriptsFull]) { fixture in
            let lead = try await fixture.ingest.ingestCall(
                try fixture.request(
                    fixture.call("Jane Doe", transcript: "hi this is jane doe my number is 555 867 5309"))
            ).leadID
            let pass = try await fixture.transcriptionWorker().transcribeDue()
            #expect(pass.redacted == 1 && pass.transcribed == 0)
            let member = try await fixture.leads.get(
                fixture.base.memberToken, practice: fixture.base.practiceA, lead: lead)
            #expect(member.transcript == "hi this is jane doe my number is 555 867 5309")
            #expect(member.redactedTranscript == "hi this is [NAME] my number is [PHONE]")
        }
    }

    @Test(
        "keyword sets tag calls and score them; leads filter by tag and by a word, as audited reads; names are never found; tags are counted per day"
    )
    func keywords() async throws {
        try await LeadsFixture.with { fixture in
            let practice = fixture.base.practiceA
            let owner = fixture.base.ownerAToken
            let keywords = fixture.base.services.keywords
            _ = try await keywords.save(
                owner, practice: practice, name: "new patient", phrases: ["New  Patient!"], weight: 2)
            _ = try await keywords.save(
                owner, practice: practice, name: "insurance", phrases: ["insurance", "member number"])
            _ = try await keywords.save(
                owner, practice: practice, name: "emergency", phrases: ["severe pain"], weight: 3)
            #expect(
                try await keywords.list(owner, practice: practice).map(\.phrases) == [
                    ["severe pain"], ["insurance", "member number"], ["new patient"],
                ])
            // Only owners and agency staff with tracking.manage change them.
            let staff = try await fixture.base.freshUser("staff@a.test", role: .practiceStaff, practice: practice)
            await #expect(throws: AccessError.self) {
                _ = try await keywords.save(staff, practice: practice, name: "x", phrases: ["x"])
            }
            await #expect(throws: AccessError.self) {
                _ = try await keywords.save(fixture.base.memberToken, practice: practice, name: "x", phrases: ["x"])
            }
            await #expect(
                throws: AccessError(
                    .invalidInput, "a keyword set's name is 1 to 40 lower-case letters, digits, spaces, _ or -")
            ) {
                _ = try await keywords.save(owner, practice: practice, name: "Bad Name!", phrases: ["x"])
            }

            let wanted = try await fixture.ingest.ingestCall(
                try fixture.request(
                    fixture.call(
                        "Jane Doe",
                        transcript:
                            "hello I am a new patient, Jane Doe, and my insurance is aetna, member number 4471 2290")
                )
            ).leadID
            let missed = try await fixture.ingest.ingestCall(
                try fixture.request(
                    fixture.call(
                        "Bob Roe", number: "+1 555 222 3333", transcript: "sorry wrong number", disposition: "missed"))
            ).leadID
            #expect(try await fixture.transcriptionWorker().transcribeDue().redacted == 2)

            let tagged = try await fixture.leads.get(owner, practice: practice, lead: wanted)
            // Matched sets 2 + 1, a call of 95 seconds 1.
            #expect(
                tagged.insights
                    == TranscriptInsights(tags: ["insurance", "new patient"], score: 4, suggestion: "qualified"))
            #expect(tagged.qualification == nil, "a suggestion is never applied by itself")
            let other = try await fixture.leads.get(owner, practice: practice, lead: missed)
            #expect(other.insights == TranscriptInsights(tags: [], score: 0, suggestion: "unqualified"))

            func ids(_ filter: LeadFilter) async throws -> [UUID] {
                try await fixture.leads.list(fixture.base.memberToken, practice: practice, filter: filter).leads.map(
                    \.id)
            }
            #expect(try await ids(LeadFilter(tag: "insurance")) == [wanted])
            #expect(try await ids(LeadFilter(tag: "emergency")) == [])
            #expect(try await ids(LeadFilter(mentions: "Insurance")) == [wanted])
            #expect(try await ids(LeadFilter(mentions: "wrong")) == [missed])
            #expect(try await ids(LeadFilter(mentions: "aetna insurance")) == [wanted])
            // Names and numbers are not in the index: only the redacted form is.
            #expect(try await ids(LeadFilter(mentions: "doe")) == [])
            #expect(try await ids(LeadFilter(mentions: "jane")) == [])
            await #expect(throws: AccessError.self) { _ = try await ids(LeadFilter(mentions: "4471")) }
            let searches = try await fixture.base.keys.database.connect()
            defer { Task { await searches.close() } }
            let audited = try await searches.query(
                "select details from enclave.audit_events where action = 'phi.read' and reason = 'search' and tenant_id = $1",
                [practice])
            #expect(audited.count == 4, "a search that returns leads is a read of them")

            // A key rotation re-seals the redacted form and the insights with the rest of the row.
            _ = try await fixture.keys.rotate(tenants: [practice])
            let report = try await Reencryptor(keys: try await fixture.base.keys.keys()).reencrypt(practice)
            #expect(report.rows >= 2)
            let rotated = try await fixture.leads.get(owner, practice: practice, lead: wanted)
            #expect(rotated.redactedTranscript == tagged.redactedTranscript && rotated.insights == tagged.insights)
            #expect(try await ids(LeadFilter(tag: "insurance")) == [wanted])

            let counts = try await keywords.tagCounts(
                owner, practice: practice, since: Date().addingTimeInterval(-86_400 * 30),
                until: Date().addingTimeInterval(86_400 * 30))
            #expect(counts.map(\.tag).sorted() == ["insurance", "new patient"])
            #expect(counts.allSatisfy { $0.calls == 1 })
        }
    }
}

@Suite("Transcripts: no network, no clear text anywhere, retention and holds")
struct TranscriptSafetyTests {
    /// The maintenance role's URL for `database` over the cluster's Unix socket: a process with
    /// no network at all can still reach it.
    static func socketURL(_ database: ScratchDatabase) async throws -> String {
        let superuser = try await database.connect()
        defer { Task { await superuser.close() } }
        let socket = try #require(
            try await superuser.query("select split_part(current_setting('unix_socket_directories'), ',', 1) as d")
                .first?.decode(String.self, "d"))
        let port = try #require(
            try await superuser.query("select current_setting('port') as p").first?.decode(String.self, "p"))
        var components = try #require(URLComponents(string: try database.url("ENCLAVE_MAINT_DATABASE_URL")))
        components.host = ""
        components.port = nil
        components.queryItems = [URLQueryItem(name: "host", value: socket), URLQueryItem(name: "port", value: port)]
        return try #require(components.string)
    }

    @Test(
        "the worker transcribes with egress denied (no network namespace), and the call's names, numbers and words are in no table, log, WAL or dump in clear"
    )
    func egressDeniedAndCanary() async throws {
        try await LeadsFixture.with { fixture in
            let database = fixture.base.keys.database
            let superuser = try await database.connect()
            defer { Task { await superuser.close() } }
            let dataDirectory = try #require(
                try await superuser.query("select current_setting('data_directory') as d").first?.decode(
                    String.self, "d"))
            let started = Date()
            let script = ScriptedCall.corpus(count: 3)[2].prefix(4)
            let lead = try await fixture.scriptedCall(script)
            // A provider's transcript too, with canaries the recognizer could not have made up.
            let canaryName = "Zebulon Quackenbushcanary"
            let provided = try await fixture.ingest.ingestCall(
                try fixture.request(
                    fixture.call(
                        canaryName, number: "+1 555 019 9123",
                        transcript:
                            "this is \(canaryName) calling, my date of birth is 02/14/1961, call me at 555 019 9123"))
            ).leadID

            // `unshare -n`: a network namespace with no interface up, not even loopback. The database
            // is reached over its Unix socket; anything else the worker tried would fail, and so would it.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            process.arguments = ["-n", TestEnvironment.enclaveExecutable.path, "transcripts", "run", "--once"]
            var environment = ProcessInfo.processInfo.environment
            environment["ENCLAVE_MAINT_DATABASE_URL"] = try await Self.socketURL(database)
            environment["ENCLAVE_MASTER_KEY_FILE"] = fixture.base.keys.keyFile
            process.environment = environment
            let log = try await process.output(includingErrors: true)
            let output = String(decoding: log, as: UTF8.self)
            #expect(process.terminationStatus == 0, "\(output)")
            #expect(output.contains("transcripts: 1 calls transcribed"), "\(output)")
            #expect(output.contains("1 provider transcripts redacted"), "\(output)")

            let owner = fixture.base.ownerAToken
            let practice = fixture.base.practiceA
            let heard = try #require(try await fixture.leads.get(owner, practice: practice, lead: lead).transcript)
            let redacted = try #require(
                try await fixture.leads.get(owner, practice: practice, lead: provided).redactedTranscript)
            #expect(!redacted.contains("Quackenbush") && !redacted.contains("9123") && !redacted.contains("1961"))
            let canaries =
                [
                    canaryName, "Quackenbushcanary", "5550199123", "555 019 9123", "02/14/1961", script.callerName,
                    heard, redacted,
                ]
                + script.callerName.split(separator: " ").map(String.init)

            var places: [(String, [Data])] = [("the worker's output", [log])]
            places.append(("the tables", [Data(try await fixture.everyTable().utf8)]))
            // pg_dump of the database, as a backup would hold it.
            let dump = Process()
            dump.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            dump.arguments = ["pg_dump", "--dbname", try database.url("ENCLAVE_SUPERUSER_DATABASE_URL")]
            let dumped = try await dump.output(includingErrors: true)
            #expect(dump.terminationStatus == 0)
            places.append(("pg_dump", [dumped]))
            // The WAL written since the test began (every test's: hundreds of megabytes on a busy
            // run), and the server's log.
            let wal = URL(fileURLWithPath: dataDirectory).appendingPathComponent("pg_wal")
            var segments: [Data] = []
            for file in try FileManager.default.contentsOfDirectory(
                at: wal, includingPropertiesForKeys: [.contentModificationDateKey])
            where file.lastPathComponent.count == 24 {
                // A segment may be recycled while the suite runs: what is gone is skipped.
                let modified = try? file.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate
                guard let modified, modified >= started.addingTimeInterval(-1),
                    let data = try? Data(contentsOf: file, options: .alwaysMapped)
                else { continue }
                segments.append(data)
            }
            #expect(!segments.isEmpty)
            places.append(("the WAL", segments))
            let serverLog = URL(fileURLWithPath: dataDirectory).deletingLastPathComponent().appendingPathComponent(
                "server.log")
            if let log = try? Data(contentsOf: serverLog) { places.append(("the server log", [log])) }
            let needles = canaries.filter { $0.count >= 4 }
            let scanned = places
            // Searched on a Dispatch thread: a scan of that much must not hold one of the few
            // cooperative threads the suite's in-process servers run on.
            let findings = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(
                        returning: scanned.map { place, chunks in
                            (
                                place,
                                chunks.contains { $0.range(of: Data("implants".utf8)) != nil },
                                needles.filter { needle in chunks.contains { $0.range(of: Data(needle.utf8)) != nil } }
                            )
                        })
                }
            }
            for (place, attribution, found) in findings {
                // The scan reads real data: what is in clear by design (the campaign) is found.
                if place != "the worker's output" && place != "the server log" {
                    #expect(attribution, "\(place) holds no attribution: not scanned")
                }
                for canary in found { #expect(Bool(false), "\(canary.prefix(12))… in clear in \(place)") }
            }
        }
    }

    @Test("retention purges a transcript with its redacted form, tags and tokens; a legal hold keeps them")
    func retentionAndHold() async throws {
        try await LeadsFixture.with { fixture in
            let practice = fixture.base.practiceA
            let owner = fixture.base.ownerAToken
            _ = try await fixture.base.services.keywords.save(
                owner, practice: practice, name: "insurance", phrases: ["insurance"])
            var leads: [UUID] = []
            for name in ["Ann Held", "Ben Purged"] {
                leads.append(
                    try await fixture.ingest.ingestCall(
                        try fixture.request(fixture.call(name, transcript: "asking about insurance for a cleaning"))
                    ).leadID)
            }
            #expect(try await fixture.transcriptionWorker().transcribeDue().redacted == 2)
            try await fixture.base.superuser(
                "insert into enclave.practice_compliance (practice_id, transcripts_days) values ($1, 5)", [practice])
            let operations = try await fixture.base.operations()
            _ = try await operations.placeHold(practice: practice, leads: [leads[0]], reason: "litigation 2026-201")
            let summary = try await operations.purge()
            #expect(summary.transcripts == 1)
            let held = try await fixture.leads.get(owner, practice: practice, lead: leads[0])
            #expect(held.transcript != nil && held.redactedTranscript != nil && held.insights?.tags == ["insurance"])
            let purged = try await fixture.leads.get(owner, practice: practice, lead: leads[1])
            #expect(purged.transcript == nil && purged.redactedTranscript == nil && purged.insights == nil)
            #expect(purged.transcriptStatus == "done", "not made again")
            let superuser = try await fixture.base.keys.database.connect()
            defer { Task { await superuser.close() } }
            let tokens = try await superuser.query(
                "select id, transcript_tokens is not null as has from enclave.leads where tenant_id = $1 and id = any ($2)",
                [practice, leads]
            ).map { (try $0.decode(UUID.self, "id"), try $0.decode(Bool.self, "has")) }
            #expect(Dictionary(uniqueKeysWithValues: tokens) == [leads[0]: true, leads[1]: false])
            #expect(try await fixture.transcriptionWorker().transcribeDue() == TranscriptionWorker.Summary())
            #expect(
                try await fixture.leads.list(
                    fixture.base.memberToken, practice: practice, filter: LeadFilter(tag: "insurance")
                )
                .leads.map(\.id) == [leads[0]])
        }
    }
}
