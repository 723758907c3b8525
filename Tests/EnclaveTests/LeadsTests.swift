import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// The identity fixture plus a call source of practice A and the lead services.
struct LeadsFixture: Sendable {
    let base: IdentityFixture
    let keys: KeyManagement
    let ingest: IngestService
    let leads: LeadService
    let source: UUID
    let secret: String

    static func with<T: Sendable>(
        scopes: [Scope] = [.leadsRead, .recordingsListen], _ body: (LeadsFixture) async throws -> T
    ) async throws -> T {
        try await IdentityFixture.with(scopes: scopes) { base in
            let keys = try await base.keys.keys()
            let (source, secret) = try await base.services.sources.create(
                base.ownerAToken, practice: base.practiceA, kind: "call", label: "Main line",
                trackingNumber: "+1 555 000 1111",
                defaults: Attribution(source: "google", medium: "cpc", campaign: "implants"))
            return try await body(
                LeadsFixture(
                    base: base, keys: keys, ingest: base.services.ingest, leads: base.services.leads, source: source.id,
                    secret: secret))
        }
    }

    func request(_ json: String, key: String? = nil, secret: String? = nil, at: Date = Date()) throws -> IngestRequest {
        let body = Array(json.utf8)
        return IngestRequest(
            sourceID: source,
            signature: try IngestSignature.sign(
                body, secret: secret ?? self.secret, timestamp: Int64(at.timeIntervalSince1970)),
            idempotencyKey: key, body: body)
    }

    func call(
        _ name: String = "Jane Patient", number: String = "+1 (555) 867-5309", transcript: String? = nil,
        disposition: String? = "answered"
    )
        -> String
    {
        var fields = [
            "\"caller_number\": \"\(number)\"", "\"caller_name\": \"\(name)\"",
            "\"started_at\": \"2026-11-29T10:00:00Z\"",
            "\"duration_seconds\": 95",
            "\"attribution\": {\"keyword\": \"dental implants\"}",
        ]
        if let disposition { fields.append("\"disposition\": \"\(disposition)\"") }
        if let transcript { fields.append("\"transcript\": \"\(transcript)\"") }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    func leadCount() async throws -> Int {
        let connection = try await base.keys.database.connect()
        defer { Task { await connection.close() } }
        return try await connection.query("select count(*)::int8 as n from enclave.leads").first?.decode(Int.self, "n")
            ?? -1
    }
}

@Suite("Leads: ingest, storage and reading")
struct LeadsTests {
    @Test("planted PHI appears nowhere in the database in clear, audit rows included, yet reads back intact")
    func phiSealed() async throws {
        try await LeadsFixture.with { fixture in
            let name = "Zelda Quixote-Plantedname"
            let number = "+1 555 321 7788"
            let transcript = "patient reports PLANTED-CONDITION-XYZZY after surgery"
            let call = try await fixture.ingest.ingestCall(
                try fixture.request(fixture.call(name, number: number, transcript: transcript)))
            #expect(call.created)
            let audio = Array("RIFF....PLANTED-AUDIO-BYTES....".utf8) + (try SecureRandom.bytes(200_000))
            let signature = try IngestSignature.sign(
                audio, secret: fixture.secret, timestamp: Int64(Date().timeIntervalSince1970))
            let stored = try await fixture.ingest.attachRecording(
                sourceID: fixture.source, signature: signature, leadID: call.leadID, contentType: "audio/wav",
                body: ChunkedBytes(audio, pieceSize: 10_000))
            #expect(stored == Int64(audio.count))
            // A form lead too, with PHI in fields and in the page URL's query string.
            let sources = TrackingSources(
                access: fixture.base.access, masterKeys: fixture.keys.masterKeys,
                masterKeyVersion: fixture.keys.activeMasterVersion)
            let form = try await sources.create(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, kind: "form", label: "Contact form")
            let formBody = Array(
                #"{"fields": {"name": "Ulric Plantedform", "phone": "555-222-3344", "message": "PLANTED-MESSAGE about my molar"}, "page_url": "https://smile.example/contact?condition=PLANTED-QUERY"}"#
                    .utf8)
            let formLead = try await fixture.ingest.ingestForm(
                IngestRequest(
                    sourceID: form.source.id,
                    signature: try IngestSignature.sign(
                        formBody, secret: form.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                    body: formBody))

            let planted = [
                name, "5553217788", "321 7788", transcript, "PLANTED-CONDITION", "PLANTED-AUDIO-BYTES",
                "Ulric Plantedform",
                "5552223344", "PLANTED-MESSAGE", "PLANTED-QUERY", "molar",
            ]
            let superuser = try await fixture.base.keys.database.connect()
            defer { Task { await superuser.close() } }
            var dump = ""
            for table in [
                "enclave.leads", "enclave.recordings", "enclave.audit_events", "enclave.tracking_sources",
                "enclave.ingest_replays", "enclave_private.ingest_credentials", "enclave.tenant_keys",
            ] {
                dump +=
                    try await superuser.query("select coalesce(string_agg(t::text, '\n'), '') as d from \(table) t")
                    .first?.decode(String.self, "d") ?? ""
            }
            #expect(dump.contains("google"), "attribution stays in clear")
            for text in planted {
                #expect(!dump.contains(text), "\(text) found in clear")
                let hex = Array(text.utf8).map { String(format: "%02x", $0) }.joined()
                #expect(!dump.contains(hex), "\(text) found hex-encoded")
            }
            // ... and the planted values come back for an authorized reader: the full transcript for
            // the practice's owner, none for agency staff whose agreement does not grant
            // transcripts.full (the redacted form is the worker's, not made yet).
            let lead = try await fixture.leads.get(
                fixture.base.memberToken, practice: fixture.base.practiceA, lead: call.leadID)
            #expect(lead.callerName == name)
            #expect(lead.callerNumber == "+15553217788")
            #expect(lead.transcript == nil && lead.redactedTranscript == nil)
            #expect(
                try await fixture.leads.get(
                    fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: call.leadID
                ).transcript == transcript)
            #expect(
                lead.attribution
                    == Attribution(source: "google", medium: "cpc", campaign: "implants", keyword: "dental implants"))
            let formRead = try await fixture.leads.get(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: formLead.leadID)
            #expect(formRead.formFields?["name"] == "Ulric Plantedform")
            #expect(formRead.pageURL == "https://smile.example/contact?condition=PLANTED-QUERY")
            var played: [UInt8] = []
            try await fixture.leads.streamRecording(
                fixture.base.memberToken, practice: fixture.base.practiceA, lead: call.leadID
            ) {
                played += $0
            }
            #expect(played == audio)
            var ranged: [UInt8] = []
            try await fixture.leads.streamRecording(
                fixture.base.memberToken, practice: fixture.base.practiceA, lead: call.leadID, range: 65_000...140_000
            ) { ranged += $0 }
            #expect(ranged == Array(audio[65_000...140_000]))
            // Reads are in the trail, naming ids only.
            let events = try await AuditLog(identity: fixture.base.identity).practiceEvents(
                fixture.base.ownerAToken, practice: fixture.base.practiceA)
            #expect(events.contains { $0.action == "recording.played" && $0.actorID == fixture.base.member })
            #expect(events.contains { $0.action == "lead.created" && $0.actorID == fixture.source })
            let auditDump =
                try await superuser.query(
                    "select coalesce(string_agg(t::text, '\n'), '') as d from enclave.audit_events t"
                )
                .first?.decode(String.self, "d") ?? ""
            for text in planted { #expect(!auditDump.contains(text)) }
        }
    }

    @Test("a wrong secret, a modified body, a stale timestamp and a replay are each refused and store nothing")
    func signatures() async throws {
        try await LeadsFixture.with { fixture in
            let body = fixture.call()
            let now = Date()
            var good = try fixture.request(body, at: now)
            _ = try await fixture.ingest.ingestCall(good)
            let before = try await fixture.leadCount()
            let mismatch = "the signature does not match this source's secret"
            let stale = "the signature's timestamp is outside the 5-minute tolerance"
            var cases: [(String, IngestRequest, String)] = []
            cases.append(("wrong secret", try fixture.request(body, secret: "whsec_not-the-secret"), mismatch))
            good.body = Array(fixture.call("Mallory Modified").utf8)
            cases.append(("modified body", good, mismatch))
            cases.append(("stale", try fixture.request(body, at: Date().addingTimeInterval(-400)), stale))
            cases.append(("future", try fixture.request(body, at: Date().addingTimeInterval(400)), stale))
            // Signed a minute before `good` (so it differs from it, however slow the machine);
            // sent twice below.
            cases.append(
                (
                    "replay", try fixture.request(body, at: now.addingTimeInterval(-60)),
                    "this signed request was already received (replay)"
                ))
            var garbled = try fixture.request(body)
            garbled.signature = "v1=abc"
            cases.append(("garbled", garbled, "the signature header must be t=<unix seconds>,v1=<64 hex digits>"))
            var unknown = try fixture.request(body)
            unknown.sourceID = UUID()
            cases.append(("unknown source", unknown, mismatch))
            // The replay case: send once (accepted), then the very same request again.
            _ = try await fixture.ingest.ingestCall(cases[4].1)
            let afterFirst = try await fixture.leadCount()
            #expect(afterFirst == before + 1)
            for (name, request, refusal) in cases {
                await #expect(throws: AccessError(.unauthenticated, refusal), "\(name) accepted") {
                    try await fixture.ingest.ingestCall(request)
                }
            }
            #expect(try await fixture.leadCount() == afterFirst)
        }
    }

    @Test("rotating a source's secret: the old secret stops working at once, the new one works")
    func secretRotation() async throws {
        try await LeadsFixture.with { fixture in
            let sources = TrackingSources(
                access: fixture.base.access, masterKeys: fixture.keys.masterKeys,
                masterKeyVersion: fixture.keys.activeMasterVersion)
            let newSecret = try await sources.rotateSecret(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, source: fixture.source)
            #expect(newSecret != fixture.secret)
            #expect(newSecret.hasPrefix("whsec_"))
            await #expect(throws: AccessError(.unauthenticated, "the signature does not match this source's secret")) {
                try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Old Secret")))
            }
            let accepted = try await fixture.ingest.ingestCall(
                try fixture.request(fixture.call("New Secret"), secret: newSecret))
            #expect(accepted.created)
            // An agency member without tracking.manage cannot rotate it.
            await #expect(throws: AccessError(.forbidden, "you do not have access to this practice's data")) {
                try await sources.rotateSecret(
                    fixture.base.memberToken, practice: fixture.base.practiceA, source: fixture.source)
            }
            let listed = try await sources.list(fixture.base.ownerAToken, practice: fixture.base.practiceA)
            #expect(listed.map(\.id).contains(fixture.source))
        }
    }

    @Test("a warm ingest, a page of leads and one lead each take one round trip to PostgreSQL")
    func oneRoundTrip() async throws {
        try await LeadsFixture.with { fixture in
            let pool = fixture.base.services.pool
            let token = fixture.base.ownerAToken
            let practice = fixture.base.practiceA
            // The first ingest of a source reads its credential and keys; the next ones do not.
            // Each operation runs once first: a connection prepares a statement on first use.
            let first = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("First"))).leadID
            _ = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Warm"), key: "k-1"))
            _ = try await fixture.leads.list(token, practice: practice)
            _ = try await fixture.leads.get(token, practice: practice, lead: first)
            func roundTrips(_ body: () async throws -> Void) async throws -> Int {
                let before = pool.roundTrips
                try await body()
                return pool.roundTrips - before
            }
            var lead: UUID?
            let ingestTrips = try await roundTrips {
                lead = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Second"), key: "k-2"))
                    .leadID
            }
            var names: Set<String> = []
            let listTrips = try await roundTrips {
                names = Set(try await fixture.leads.list(token, practice: practice).leads.compactMap(\.callerName))
            }
            var one: Lead?
            let getTrips = try await roundTrips {
                one = try await fixture.leads.get(token, practice: practice, lead: try #require(lead))
            }
            // A retry of the stored request is one round trip too, and stores nothing.
            var again: IngestResult?
            let retryTrips = try await roundTrips {
                again = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Second"), key: "k-2"))
            }
            #expect([ingestTrips, listTrips, getTrips, retryTrips] == [Int](repeating: 1, count: 4))
            #expect(names == ["First", "Warm", "Second"])
            #expect(
                pool.options.preparedStatements
                    == (ProcessInfo.processInfo.environment["ENCLAVE_PREPARED_STATEMENTS"] != "0"))
            #expect(one?.callerName == "Second")
            #expect(again?.created == false && again?.leadID == lead)
        }
    }

    @Test("a source disabled after its credential was read is refused at the next ingest, and stores nothing")
    func disabledAfterCached() async throws {
        try await LeadsFixture.with { fixture in
            _ = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Warm")))
            let before = try await fixture.leadCount()
            let superuser = try await fixture.base.keys.database.connect()
            defer { Task { await superuser.close() } }
            try await superuser.query(
                "update enclave_private.ingest_credentials set disabled_at = now() where source_id = $1",
                [fixture.source])
            await #expect(throws: AccessError(.unauthenticated, "the signature does not match this source's secret")) {
                try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Disabled")))
            }
            #expect(try await fixture.leadCount() == before)
            // Enabled again, the source works at once.
            try await superuser.query(
                "update enclave_private.ingest_credentials set disabled_at = null where source_id = $1",
                [fixture.source])
            #expect(try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Enabled"))).created)
        }
    }

    @Test("20 concurrent retries with one idempotency key store exactly one lead")
    func idempotency() async throws {
        try await LeadsFixture.with { fixture in
            let before = try await fixture.leadCount()
            let same = try fixture.request(fixture.call(), key: "call-abc-123")
            let results = try await withThrowingTaskGroup(of: IngestResult.self) { group in
                for attempt in 0..<20 {
                    // Half are byte-identical retries; half were re-signed a second later.
                    let request =
                        attempt % 2 == 0
                        ? same
                        : try fixture.request(fixture.call(), key: "call-abc-123", at: Date().addingTimeInterval(1))
                    group.addTask { try await fixture.ingest.ingestCall(request) }
                }
                return try await group.reduce(into: [IngestResult]()) { $0.append($1) }
            }
            #expect(Set(results.map(\.leadID)).count == 1)
            #expect(results.filter(\.created).count == 1)
            #expect(try await fixture.leadCount() == before + 1)
        }
    }

    @Test("agency users without an active BAA, or without an assignment, read nothing and leave access.denied")
    func deniedReaders() async throws {
        try await LeadsFixture.with { fixture in
            _ = try await fixture.ingest.ingestCall(try fixture.request(fixture.call()))
            let unassigned = try await fixture.base.directory.createUser(
                email: "other@agency.test", displayName: "Una Unassigned", password: IdentityFixture.password)
            try await fixture.base.directory.grant(user: unassigned, role: .agencyMember, agency: fixture.base.agency)
            let unassignedToken = try await IdentityFixture.signInWithMFA(
                fixture.base.identity, fixture.base.keys, "other@agency.test")
            // The assigned member loses the BAA.
            try await fixture.base.agreements.revoke(fixture.base.ownerAToken, agreement: fixture.base.baa)
            for token in [unassignedToken, fixture.base.memberToken] {
                await #expect(throws: AccessError(.forbidden, "you do not have access to this practice's data")) {
                    try await fixture.leads.list(token, practice: fixture.base.practiceA)
                }
                await #expect(throws: AccessError(.forbidden, "you do not have access to this practice's data")) {
                    try await fixture.leads.find(token, practice: fixture.base.practiceA, callerNumber: "+15558675309")
                }
            }
            let denials = try await AuditLog(identity: fixture.base.identity).practiceEvents(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, filter: .init(action: .accessDenied))
            #expect(denials.filter { $0.actorID == unassigned }.count == 2)
            #expect(denials.filter { $0.actorID == fixture.base.member }.count == 2)
        }
    }

    @Test("leads written before and after a key rotation all read back")
    func rotationMidStream() async throws {
        try await LeadsFixture.with { fixture in
            var ids: [UUID] = []
            for index in 0..<3 {
                ids.append(
                    try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Before \(index)"))).leadID)
            }
            _ = try await fixture.keys.rotate(tenants: [fixture.base.practiceA])
            for index in 0..<3 {
                ids.append(
                    try await fixture.ingest.ingestCall(try fixture.request(fixture.call("After \(index)"))).leadID)
            }
            let page = try await fixture.leads.list(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, filter: .init(kind: "call"))
            let names = Set(page.leads.compactMap(\.callerName))
            #expect(names == ["Before 0", "Before 1", "Before 2", "After 0", "After 1", "After 2"])
            let connection = try await fixture.base.keys.database.connect()
            defer { Task { await connection.close() } }
            let versions = try await connection.query(
                "select distinct dek_version from enclave.leads where dek_version is not null order by 1"
            )
            .map { try $0.decode(Int32.self, "dek_version") }
            #expect(versions == [1, 2])
        }
    }

    @Test(
        "malformed inputs get a clear error naming the problem and store nothing",
        arguments: [
            ("invalid UTF-8", "", "not valid UTF-8"),
            ("10 MB form field", "big", "larger than 1 MiB"),
            (
                "unknown field",
                #"{"caller_number": "+15558675309", "started_at": "2026-11-29T10:00:00Z", "ssn": "123"}"#,
                "unknown field \"ssn\""
            ),
            ("missing caller number", #"{"started_at": "2026-11-29T10:00:00Z"}"#, "\"caller_number\" is required"),
            ("missing start", #"{"caller_number": "+15558675309"}"#, "\"started_at\" is required"),
            (
                "not a phone number", #"{"caller_number": "call me maybe", "started_at": "2026-11-29T10:00:00Z"}"#,
                "not a phone number"
            ),
            (
                "bad duration",
                #"{"caller_number": "+15558675309", "started_at": "2026-11-29T10:00:00Z", "duration_seconds": -4}"#,
                "duration_seconds"
            ),
            (
                "boolean duration",
                #"{"caller_number": "+15558675309", "started_at": "2026-11-29T10:00:00Z", "duration_seconds": true}"#,
                "duration_seconds"
            ),
            ("bad date", #"{"caller_number": "+15558675309", "started_at": "yesterday"}"#, "RFC 3339"),
            ("not an object", #"["caller_number"]"#, "must be a JSON object"),
            ("not JSON", #"{"caller_number": "#, "not valid JSON"),
        ])
    func malformed(name: String, json: String, message: String) async throws {
        try await LeadsFixture.with { fixture in
            var body = Array(json.utf8)
            if name == "invalid UTF-8" {
                body =
                    Array(#"{"caller_name": ""#.utf8) + [0xff, 0xfe]
                    + Array(#"", "started_at": "2026-11-29T10:00:00Z"}"#.utf8)
            }
            if name == "10 MB form field" {
                body =
                    Array(
                        #"{"caller_number": "+15558675309", "started_at": "2026-11-29T10:00:00Z", "caller_name": ""#
                            .utf8)
                    + [UInt8](repeating: UInt8(ascii: "a"), count: 10_000_000) + Array("\"}".utf8)
            }
            let before = try await fixture.leadCount()
            let request = IngestRequest(
                sourceID: fixture.source,
                signature: try IngestSignature.sign(
                    body, secret: fixture.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                body: body)
            do {
                _ = try await fixture.ingest.ingestCall(request)
                Issue.record("\(name) accepted")
            } catch let error as AccessError {
                #expect(error.code == .invalidInput)
                #expect(error.message.contains(message), "\(error.message)")
            }
            #expect(try await fixture.leadCount() == before)
        }
    }

    @Test("a call of 0 or 1 second is a duration, not a boolean (Foundation on Linux casts both to Bool)")
    func shortCalls() async throws {
        try await LeadsFixture.with { fixture in
            for seconds in [0, 1] {
                let json =
                    #"{"caller_number": "+15558675309", "started_at": "2026-11-29T10:00:00Z", "duration_seconds": \#(seconds), "disposition": "missed"}"#
                let created = try await fixture.ingest.ingestCall(try fixture.request(json))
                let lead = try await fixture.leads.get(
                    fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: created.leadID)
                #expect(lead.durationSeconds == seconds)
            }
        }
    }

    @Test("listing filters and pages with a cursor; find by caller; one phi.read event per call naming the leads")
    func listing() async throws {
        try await LeadsFixture.with { fixture in
            for index in 0..<7 {
                let number = index < 3 ? "+1 555 444 0000" : "+1 555 444 00\(10 + index)"
                _ = try await fixture.ingest.ingestCall(
                    try fixture.request(fixture.call("Caller \(index)", number: number)))
            }
            var seen: [UUID] = []
            var cursor: String?
            repeat {
                let page = try await fixture.leads.list(
                    fixture.base.memberToken, practice: fixture.base.practiceA,
                    filter: .init(kind: "call", campaign: "implants", cursor: cursor, limit: 3))
                seen += page.leads.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen.count == 7)
            #expect(Set(seen).count == 7)
            let found = try await fixture.leads.find(
                fixture.base.memberToken, practice: fixture.base.practiceA, callerNumber: "(555) 444-0000")
            #expect(found.count == 3)
            #expect(Set(found.compactMap(\.callerName)) == ["Caller 0", "Caller 1", "Caller 2"])
            await #expect(throws: AccessError(.invalidInput, "the cursor is not valid")) {
                try await fixture.leads.list(
                    fixture.base.memberToken, practice: fixture.base.practiceA, filter: .init(cursor: "garbage!"))
            }
            let reads = try await AuditLog(identity: fixture.base.identity).practiceEvents(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, filter: .init(action: .phiRead))
            #expect(reads.count == 4)  // three pages and one find
            // The attribution's source filters too (the source's defaults say google).
            let google = try await fixture.leads.list(
                fixture.base.memberToken, practice: fixture.base.practiceA, filter: .init(source: "google"))
            #expect(google.leads.count == 7)
            let facebook = try await fixture.leads.list(
                fixture.base.memberToken, practice: fixture.base.practiceA, filter: .init(source: "facebook"))
            #expect(facebook.leads.isEmpty)
        }
    }

    @Test("a practice owner redacts PHI; attribution stays; others may not")
    func redaction() async throws {
        try await LeadsFixture.with { fixture in
            let lead = try await fixture.ingest.ingestCall(
                try fixture.request(fixture.call("Rita Redact", transcript: "private")))
            await #expect(throws: AccessError(.forbidden, "only an owner of the practice may redact its leads")) {
                try await fixture.leads.redact(
                    fixture.base.memberToken, practice: fixture.base.practiceA, lead: lead.leadID, fields: [.callerName]
                )
            }
            try await fixture.leads.redact(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: lead.leadID,
                fields: [.callerName, .transcript, .callerNumber])
            let read = try await fixture.leads.get(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, lead: lead.leadID)
            #expect(read.callerName == nil && read.transcript == nil && read.callerNumber == nil)
            #expect(read.redactedAt != nil)
            #expect(read.attribution.campaign == "implants")
            #expect(
                try await fixture.leads.find(
                    fixture.base.ownerAToken, practice: fixture.base.practiceA, callerNumber: "+15558675309"
                ).isEmpty)
        }
    }

    @Test("reports count and sum without reading PHI, for one practice and across reachable practices")
    func reports() async throws {
        try await LeadsFixture.with { fixture in
            for (index, disposition) in ["answered", "answered", "voicemail", nil].enumerated() {
                _ = try await fixture.ingest.ingestCall(
                    try fixture.request(fixture.call("Caller \(index)", disposition: disposition)))
            }
            let reports = LeadReports(access: fixture.base.access, agreements: fixture.base.agreements)
            let since = Date(timeIntervalSince1970: 1_780_000_000)
            let until = Date().addingTimeInterval(86_400)
            let rows = try await reports.practice(
                fixture.base.memberToken, practice: fixture.base.practiceA, since: since, until: until)
            let implants = rows.filter { $0.campaign == "implants" }
            #expect(implants.map(\.calls).reduce(0, +) == 4)
            #expect(implants.map(\.callSeconds).reduce(0, +) == 4 * 95)
            // A call sent without a disposition is neither answered nor missed.
            #expect(implants.map(\.answered).reduce(0, +) == 2)
            #expect(implants.map(\.missed).reduce(0, +) == 1)
            let across = try await reports.agency(
                fixture.base.memberToken, agency: fixture.base.agency, since: since, until: until)
            #expect(Set(across.keys) == [fixture.base.practiceA])
            #expect(across[fixture.base.practiceA]?.calls == rows.map(\.calls).reduce(0, +))
            let reads = try await AuditLog(identity: fixture.base.identity).practiceEvents(
                fixture.base.ownerAToken, practice: fixture.base.practiceA, filter: .init(action: .phiRead))
            #expect(reads.isEmpty)
        }
    }
}

/// Bytes delivered in pieces, as a streamed request body would be.
struct ChunkedBytes: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let bytes: [UInt8]
    let pieceSize: Int

    init(_ bytes: [UInt8], pieceSize: Int) {
        self.bytes = bytes
        self.pieceSize = pieceSize
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let bytes: [UInt8]
        let pieceSize: Int
        var offset = 0
        mutating func next() async -> [UInt8]? {
            guard offset < bytes.count else { return nil }
            let end = Swift.min(offset + pieceSize, bytes.count)
            defer { offset = end }
            return Array(bytes[offset..<end])
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bytes: bytes, pieceSize: pieceSize) }
}
