import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// A webhook receiver that answers 200 and keeps what it was sent.
private struct AcceptingTransport: WebhookTransport {
    let bodies = Locked<[[UInt8]]>([])
    func post(_ url: URL, headers: [(String, String)], body: [UInt8]) async throws -> Int {
        bodies.withLock { $0.append(body) }
        return 200
    }
}

/// One patient of practice A: two calls from one number written two ways, a form with their
/// number and email, a form with only their email; another patient's call; and practice B's call
/// from the same number. A covered webhook endpoint exists before they arrive.
private struct PatientFixture: Sendable {
    let leads: LeadsFixture
    let patient: [UUID]
    let other: UUID
    let practiceBLead: UUID
    let transport: AcceptingTransport
    /// An owner of practice A, re-authenticated moments ago.
    let ownerToken: SessionToken
    var base: IdentityFixture { leads.base }
    var rights: PatientRights { base.services.patients }

    static let number = "+1 (555) 010-2000"
    static let email = "Pat.Doe@Example.com"
    static let name = "Patricia Plantedname"

    static func with(_ body: (PatientFixture) async throws -> Void) async throws {
        try await LeadsFixture.with(scopes: [.leadsRead, .recordingsListen, .leadsExport]) { fixture in
            let base = fixture.base
            let owner = try await base.freshUser("owner-fresh@a.test", role: .practiceOwner, practice: base.practiceA)
            _ = try await base.services.webhooks.create(
                owner, practice: base.practiceA, url: "https://hooks.example/leads", baaCovered: true)
            let first = try await fixture.ingest.ingestCall(
                try fixture.request(fixture.call(name, number: number), key: "p-1")
            ).leadID
            let second = try await fixture.ingest.ingestCall(
                try fixture.request(fixture.call(name, number: "555.010.2000"), key: "p-2")
            ).leadID
            let audio = Array("RIFF-PLANTED-AUDIO".utf8) + (try SecureRandom.bytes(4_000))
            _ = try await fixture.ingest.attachRecording(
                sourceID: fixture.source,
                signature: try IngestSignature.sign(
                    audio, secret: fixture.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                leadID: first, contentType: "audio/wav", body: ChunkedBytes(audio, pieceSize: 1_000))
            let other = try await fixture.ingest.ingestCall(
                try fixture.request(fixture.call("Someone Else", number: "+1 555 010 3000"), key: "p-3")
            ).leadID
            let form = try await base.services.sources.create(
                owner, practice: base.practiceA, kind: "form", label: "Contact form")
            func submit(_ json: String) async throws -> UUID {
                let bytes = Array(json.utf8)
                return try await fixture.ingest.ingestForm(
                    IngestRequest(
                        sourceID: form.source.id,
                        signature: try IngestSignature.sign(
                            bytes, secret: form.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                        body: bytes)
                ).leadID
            }
            let withBoth = try await submit(
                #"{"fields": {"name": "Patricia Plantedname", "phone": "(555) 010-2000", "email": "pat.doe@example.com"}}"#
            )
            let emailOnly = try await submit(
                #"{"fields": {"name": "P. Plantedname", "contact": " PAT.DOE@example.COM ", "message": "a molar"}}"#)
            // Practice B: the same number, another practice's patient record.
            let ownerB = try await base.identity.signInFresh(email: "owner@b.test", password: IdentityFixture.password)
            let (sourceB, secretB) = try await base.services.sources.create(
                ownerB.token, practice: base.practiceB, kind: "call", label: "B line")
            let bodyB = Array(fixture.call(name, number: number).utf8)
            let leadB = try await fixture.ingest.ingestCall(
                IngestRequest(
                    sourceID: sourceB.id,
                    signature: try IngestSignature.sign(
                        bodyB, secret: secretB, timestamp: Int64(Date().timeIntervalSince1970)),
                    idempotencyKey: "b-1", body: bodyB)
            ).leadID
            try await body(
                PatientFixture(
                    leads: fixture, patient: [first, second, withBoth, emailOnly], other: other,
                    practiceBLead: leadB, transport: AcceptingTransport(), ownerToken: owner))
        }
    }

    func owner() async throws -> SessionToken { ownerToken }
}

@Suite("A patient's rights: lookup, access report, requests, erasure and restriction")
struct PatientRightsTests {
    @Test("a patient is found whole by number (any format) and by email; another practice's lead never")
    func lookup() async throws {
        try await PatientFixture.with { fixture in
            let owner = try await fixture.owner()
            let practice = fixture.base.practiceA
            let byNumber = try await fixture.rights.find(
                owner, practice: practice, phoneNumber: "5550102000", email: nil)
            #expect(Set(byNumber.map(\.id)) == Set(fixture.patient.prefix(3)))
            let byEmail = try await fixture.rights.find(
                owner, practice: practice, phoneNumber: nil, email: "pat.doe@EXAMPLE.com")
            #expect(Set(byEmail.map(\.id)) == Set(fixture.patient.suffix(2)))
            let both = try await fixture.rights.find(
                owner, practice: practice, phoneNumber: PatientFixture.number, email: PatientFixture.email)
            #expect(Set(both.map(\.id)) == Set(fixture.patient))
            #expect(!both.map(\.id).contains(fixture.practiceBLead))
            #expect(!both.map(\.id).contains(fixture.other))
            #expect(both.first { $0.id == fixture.patient[0] }?.hasRecording == true)
            // Each lookup is audited with its count, never the identifier.
            let trail = try await fixture.base.count(
                """
                select count(*)::int8 as n from enclave.audit_events where tenant_id = $1
                  and action = 'patient.looked_up' and details ->> 'found' in ('3', '2', '4')
                  and details::text not like '%555%' and details::text not like '%example%'
                """, [practice])
            #expect(trail == 3)
            await #expect(throws: AccessError(.invalidInput, "not a phone number")) {
                try await fixture.rights.find(owner, practice: practice, phoneNumber: "call me", email: nil)
            }
            await #expect(throws: AccessError(.invalidInput, "give a phone number or an email address")) {
                try await fixture.rights.find(owner, practice: practice, phoneNumber: "", email: nil)
            }
        }
    }

    @Test("staff without patients.requests and every agency user are refused; staff granted it are not")
    func whoMayAsk() async throws {
        try await PatientFixture.with { fixture in
            let practice = fixture.base.practiceA
            let forbidden = AccessError(
                .forbidden, "patients' requests are answered by the practice's owners and the staff they allow")
            let staff = try await fixture.base.freshUser("staff@a.test", role: .practiceStaff, practice: practice)
            for token in [staff, fixture.base.memberToken, fixture.base.adminToken] {
                await #expect(throws: forbidden) {
                    try await fixture.rights.find(
                        token, practice: practice, phoneNumber: PatientFixture.number, email: nil)
                }
                await #expect(throws: forbidden) {
                    try await fixture.rights.report(token, practice: practice, leads: fixture.patient)
                }
                await #expect(throws: forbidden) {
                    try await fixture.rights.requests(token, practice: practice)
                }
            }
            // Staff may not grant themselves the scope; the owner may.
            await #expect(throws: AccessError.self) {
                try await fixture.rights.setStaffScopes(
                    staff, practice: practice, staff: "staff@a.test", scopes: ["patients.requests"])
            }
            #expect(
                try await !fixture.rights.setStaffScopes(
                    try await fixture.owner(), practice: practice, staff: "member@agency.test",
                    scopes: ["patients.requests"]), "an agency member is not the practice's staff")
            #expect(
                try await fixture.rights.setStaffScopes(
                    try await fixture.owner(), practice: practice, staff: "Staff@A.test ", scopes: ["patients.requests"]
                ))
            let found = try await fixture.rights.find(
                staff, practice: practice, phoneNumber: PatientFixture.number, email: nil)
            #expect(found.count == 3)
            // Erasure stays the owner's.
            let request = try await fixture.rights.logRequest(
                staff, practice: practice, kind: .erasure, receivedOn: Self.today, leads: found.map(\.id))
            await #expect(
                throws: AccessError(.forbidden, "only an owner of the practice may erase or restrict a patient's leads")
            ) {
                try await fixture.rights.erase(staff, practice: practice, request: request)
            }
        }
    }

    @Test(
        "every access appears in the report with its actor and agreement: an agency read, a playback, a webhook, break-glass, an export"
    )
    func report() async throws {
        try await PatientFixture.with { fixture in
            let base = fixture.base
            let practice = base.practiceA
            let lead = fixture.patient[0]
            // An agency member opens the lead and plays its recording.
            _ = try await base.services.leads.get(base.memberToken, practice: practice, lead: lead)
            try await base.services.leads.streamRecording(base.memberToken, practice: practice, lead: lead) { _ in }
            // The webhook queued at ingest is delivered to the covered endpoint: a disclosure.
            let deliverer = WebhookDeliverer(
                maintenance: fixture.leads.keys.maintenance, keys: fixture.leads.keys.store,
                transport: fixture.transport)
            #expect(try await deliverer.deliverDue().disclosed >= 1)
            // A platform responder under break-glass opens it.
            let responder = try await base.freshUser("responder@platform.test")
            try await (try await base.operations()).setResponder(email: "responder@platform.test", true)
            let glass = try await base.compliance.openBreakGlass(
                responder, practice: practice, reason: "patient safety incident", seconds: 600)
            _ = try await base.services.leads.get(responder, practice: practice, lead: lead)
            // The owner exports the practice.
            let owner = try await fixture.owner()
            let path = NSTemporaryDirectory() + "patient-export-\(UUID()).age"
            defer { try? FileManager.default.removeItem(atPath: path) }
            _ = try await base.compliance.export(
                owner, practice: practice, passphrase: "a long enough passphrase", path: path)

            let events = try await fixture.rights.report(owner, practice: practice, leads: fixture.patient)
            let about = events.filter { $0.leadID == lead }
            let memberRead = try #require(about.first { $0.action == "phi.read" && $0.actorID == base.member })
            #expect(memberRead.agreementID == base.baa)
            #expect(memberRead.agencyName == "Growth Agency")
            #expect(memberRead.disclosure)
            let playback = try #require(about.first { $0.action == "recording.played" })
            #expect(playback.actorID == base.member && playback.agreementID == base.baa)
            let webhook = try #require(about.first { $0.action == "phi.disclosed" })
            #expect(webhook.reason == "webhook" && webhook.disclosure && webhook.kind == "sent by webhook")
            let emergency = try #require(about.first { $0.breakGlassID == glass })
            #expect(emergency.action == "phi.read" && emergency.disclosure && emergency.agreementID == nil)
            let export = try #require(events.first { $0.action == "phi.export" })
            #expect(export.leadID == nil && export.disclosure && export.actorRole == "practice_owner")
            #expect(about.contains { $0.action == "lead.created" && $0.actorKind == "ingest" })
            // Another patient's lead and practice B's lead are not in it.
            #expect(!events.contains { $0.leadID == fixture.other || $0.leadID == fixture.practiceBLead })
            // Linked by the chainer, each event links to the one before it.
            let auditKey = try MasterKeyFile.create(path: path + ".auditkey")
            defer { try? FileManager.default.removeItem(atPath: path + ".auditkey") }
            _ = try await AuditChainer(maintenance: fixture.leads.keys.maintenance, key: auditKey, log: nil)
                .linkPending()
            let linked = try await fixture.rights.report(owner, practice: practice, leads: fixture.patient)
            #expect(!linked.isEmpty && linked.allSatisfy { $0.linked && $0.linkIntact })

            // The CSV: kinds, people, ids; no PHI.
            let csv = PatientRights.csv(linked)
            #expect(csv.contains("sent by webhook") && csv.contains("member@agency.test"))
            for planted in [PatientFixture.name, "5550102000", "010-2000", "pat.doe", "molar", "RIFF"] {
                #expect(!csv.contains(planted), "\(planted) in the report's CSV")
            }
        }
    }

    @Test("erasure leaves no field readable and refuses held leads; restriction stops webhooks and exports")
    func eraseAndRestrict() async throws {
        try await PatientFixture.with { fixture in
            let base = fixture.base
            let practice = base.practiceA
            let owner = try await fixture.owner()
            let found = try await fixture.rights.find(
                owner, practice: practice, phoneNumber: PatientFixture.number, email: PatientFixture.email)
            let held = fixture.patient[1]
            _ = try await base.compliance.placeHold(owner, practice: practice, leads: [held], reason: "litigation")
            let request = try await fixture.rights.logRequest(
                owner, practice: practice, kind: .erasure, receivedOn: Self.today, leads: found.map(\.id))
            let listed = try #require(try await fixture.rights.requests(owner, practice: practice).first)
            #expect(listed.kind == .erasure && listed.leads == 4 && !listed.overdue && listed.doneAt == nil)
            #expect(listed.dueOn > listed.receivedOn)
            let result = try await fixture.rights.erase(owner, practice: practice, request: request)
            #expect(result.erased == 3 && result.held == 1)
            #expect(
                try await base.count(
                    """
                    select count(*)::int8 as n from enclave.leads where tenant_id = $1 and id = any ($2::uuid[])
                      and num_nonnulls(caller_number, caller_name, transcript, form_fields, page_url, caller_index,
                                       email_index, recording_header) = 0 and redacted_at is not null
                    """, [practice, fixture.patient.filter { $0 != held }]) == 3)
            #expect(
                try await base.count(
                    "select count(*)::int8 as n from enclave.recordings where tenant_id = $1 and lead_id = $2",
                    [practice, fixture.patient[0]]) == 0)
            #expect(
                try await base.count(
                    "select count(*)::int8 as n from enclave.leads where id = $1 and caller_number is not null", [held])
                    == 1)
            // The erased are found no more; the request is done, and cannot be done twice.
            let after = try await fixture.rights.find(
                owner, practice: practice, phoneNumber: PatientFixture.number, email: PatientFixture.email)
            #expect(after.map(\.id) == [held])
            #expect(try await fixture.rights.requests(owner, practice: practice).first?.doneAt != nil)
            await #expect(throws: AccessError.self) {
                try await fixture.rights.erase(owner, practice: practice, request: request)
            }

            // Restriction: the other patient's lead. Its queued webhook is refused, and the
            // owner's export leaves it out.
            let restriction = try await fixture.rights.logRequest(
                owner, practice: practice, kind: .restriction, receivedOn: Self.today, leads: [fixture.other])
            #expect(try await fixture.rights.restrict(owner, practice: practice, request: restriction) == 1)
            let deliverer = WebhookDeliverer(
                maintenance: fixture.leads.keys.maintenance, keys: fixture.leads.keys.store,
                transport: fixture.transport)
            _ = try await deliverer.deliverDue()
            let sent = fixture.transport.bodies.value.map { String(decoding: $0, as: UTF8.self) }
            #expect(!sent.contains { $0.contains(fixture.other.uuidString.lowercased()) })
            #expect(
                try await base.count(
                    """
                    select count(*)::int8 as n from enclave.outbox where tenant_id = $1 and status = 'failed'
                      and last_error = 'lead restricted at the patient''s request'
                    """, [practice]) == 1)
            let path = NSTemporaryDirectory() + "restricted-export-\(UUID()).age"
            defer { try? FileManager.default.removeItem(atPath: path) }
            let counts = try await base.compliance.export(
                owner, practice: practice, passphrase: "a long enough passphrase", path: path)
            let total = try await base.count(
                "select count(*)::int8 as n from enclave.leads where tenant_id = $1", [practice])
            #expect(counts.leads == total - 1)
        }
    }

    @Test("a request's due day follows its kind; a request about another practice's lead is refused")
    func requestLog() async throws {
        try await PatientFixture.with { fixture in
            let practice = fixture.base.practiceA
            let owner = try await fixture.owner()
            let copy = try await fixture.rights.logRequest(
                owner, practice: practice, kind: .copy, receivedOn: "2026-11-01", leads: [fixture.patient[0]])
            let report = try await fixture.rights.logRequest(
                owner, practice: practice, kind: .accessReport, receivedOn: Self.today, leads: fixture.patient)
            let listed = try await fixture.rights.requests(owner, practice: practice)
            let copyRow = try #require(listed.first { $0.id == copy })
            #expect(copyRow.dueOn == "2026-12-01")
            #expect(copyRow.overdue == (Self.today > "2026-12-01"))
            #expect(try #require(listed.first { $0.id == report }).leads == 4)
            await #expect(throws: AccessError.self) {
                try await fixture.rights.logRequest(
                    owner, practice: practice, kind: .copy, receivedOn: Self.today, leads: [fixture.practiceBLead])
            }
            await #expect(throws: AccessError(.invalidInput, "the day received is yyyy-mm-dd")) {
                try await fixture.rights.logRequest(
                    owner, practice: practice, kind: .copy, receivedOn: "yesterday", leads: [])
            }
            // The copy received on 2026-11-01 was due on 2026-12-01: past it, the scan raises one
            // alert for it (and only once); the report's request is not due yet.
            if Self.today > "2026-12-01" {
                _ = try await (try await fixture.base.operations()).scanAlerts()
                _ = try await (try await fixture.base.operations()).scanAlerts()
                let alerts = try await fixture.base.compliance.alerts(owner, practice: practice)
                    .filter { $0.kind == .requestOverdue }
                #expect(alerts.count == 1 && alerts.first?.details["request"] == copy.uuidString.lowercased())
            }
            #expect(try await fixture.rights.complete(owner, practice: practice, id: report, outcome: ["events": 12]))
            #expect(try await !fixture.rights.complete(owner, practice: practice, id: report, outcome: [:]))
        }
    }

    @Test("leads stored before the email index are indexed by a resumable backfill under RLS, once")
    func emailBackfill() async throws {
        try await PatientFixture.with { fixture in
            let practice = fixture.base.practiceA
            let owner = try await fixture.owner()
            // As if stored before issue 29: no email index.
            try await fixture.base.superuser(
                "update enclave.leads set email_index = null where tenant_id = $1", [practice])
            #expect(
                try await fixture.rights.find(owner, practice: practice, phoneNumber: nil, email: PatientFixture.email)
                    .isEmpty)
            let backfill = EmailIndexBackfill(keys: fixture.leads.keys, batchSize: 1)
            // A run stopped after its batch at the last lead but one: the next run goes on from there.
            let ids = fixture.patient.suffix(2).sorted { $0.uuidString.lowercased() < $1.uuidString.lowercased() }
            try await fixture.base.superuser(
                """
                insert into enclave.tenant_migrations (tenant_id, migration, status, attempts, batch_cursor)
                values ($1, $2, 'running', 1, $3)
                """, [practice, EmailIndexBackfill.name, ids[0].uuidString.lowercased()])
            #expect(try await backfill.run(tenants: [practice]) == [1])
            #expect(
                try await fixture.base.count(
                    "select count(*)::int8 as n from enclave.leads where tenant_id = $1 and email_index is not null",
                    [practice]) == 1)
            // From the start: both, and the practice is done.
            try await fixture.base.superuser("delete from enclave.tenant_migrations where tenant_id = $1", [practice])
            #expect(try await backfill.run(tenants: [practice]) == [1])
            #expect(try await backfill.run(tenants: [practice]) == [0])
            let found = try await fixture.rights.find(
                owner, practice: practice, phoneNumber: nil, email: PatientFixture.email)
            #expect(Set(found.map(\.id)) == Set(fixture.patient.suffix(2)))
            #expect(
                try await fixture.base.count(
                    """
                    select count(*)::int8 as n from enclave.tenant_migrations
                    where tenant_id = $1 and migration = $2 and status = 'done'
                    """, [practice, EmailIndexBackfill.name]) == 1)
        }
    }

    static var today: String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date())
    }
}

@Suite("A patient's copy of their records")
struct PatientCopyTests {
    @Test("the copy opens with unzip (and age -d when encrypted), holds every lead and recording, and is a disclosure")
    func copy() async throws {
        try await PatientFixture.with { fixture in
            let practice = fixture.base.practiceA
            let owner = try await fixture.owner()
            let found = try await fixture.rights.find(
                owner, practice: practice, phoneNumber: PatientFixture.number, email: PatientFixture.email)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("copy-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            for passphrase in [nil, "told to the patient by phone"] as [String?] {
                let request = try await fixture.rights.logRequest(
                    owner, practice: practice, kind: .copy, receivedOn: "2026-11-20", leads: found.map(\.id))
                let path = directory.appendingPathComponent(passphrase == nil ? "copy.zip" : "copy.zip.age").path
                let counts = try await fixture.rights.copy(
                    owner, practice: practice, request: request, passphrase: passphrase, path: path)
                #expect(counts.leads == 4 && counts.recordings == 1)
                var zip = path
                if let passphrase {
                    zip = directory.appendingPathComponent("opened.zip").path
                    #expect(try AgeTool.decrypt(path, passphrase: passphrase, to: zip))
                }
                let out = directory.appendingPathComponent(passphrase == nil ? "plain" : "encrypted").path
                #expect(try AgeTool.run(["unzip", "-q", zip, "-d", out]) == 0)
                #expect(try AgeTool.run(["unzip", "-tq", zip]) == 0, "every CRC checks")
                let csv = String(
                    decoding: try Data(contentsOf: URL(fileURLWithPath: out + "/leads.csv")), as: UTF8.self)
                #expect(csv.contains(PatientFixture.name) && csv.contains("+15550102000"))
                for lead in found { #expect(csv.contains(lead.id.uuidString.lowercased())) }
                #expect(!csv.contains("Someone Else"), "another patient's lead")
                let audio = try Data(
                    contentsOf: URL(
                        fileURLWithPath: out + "/recordings/\(fixture.patient[0].uuidString.lowercased()).wav"))
                #expect(audio.starts(with: Array("RIFF-PLANTED-AUDIO".utf8)) && audio.count == 4_018)
                let readme = String(
                    decoding: try Data(contentsOf: URL(fileURLWithPath: out + "/README.txt")), as: UTF8.self)
                #expect(readme.contains("Requested on 2026-11-20"))
                // Done, and recorded as a disclosure to the individual, per lead, with both days.
                let done = try #require(
                    try await fixture.rights.requests(owner, practice: practice).first { $0.id == request })
                #expect(done.doneAt != nil)
                #expect(
                    try await fixture.base.count(
                        """
                        select count(*)::int8 as n from enclave.audit_events where tenant_id = $1
                          and action = 'phi.disclosed' and reason = 'patient copy' and details ->> 'request' = $2
                          and details ->> 'received_on' = '2026-11-20' and details ? 'delivered_on'
                        """, [practice, request.uuidString.lowercased()]) == 4)
                await #expect(throws: AccessError.self) {
                    try await fixture.rights.copy(
                        owner, practice: practice, request: request, passphrase: nil, path: path + ".again")
                }
            }
            let report = try await fixture.rights.report(owner, practice: practice, leads: found.map(\.id))
            #expect(report.filter { $0.kind == "copy to the patient" && $0.disclosure }.count == 8)
        }
    }

    @Test("the copy needs a re-authentication")
    func fresh() async throws {
        try await PatientFixture.with { fixture in
            let practice = fixture.base.practiceA
            let owner = try await fixture.owner()
            let request = try await fixture.rights.logRequest(
                owner, practice: practice, kind: .copy, receivedOn: PatientRightsTests.today, leads: fixture.patient)
            try await fixture.base.superuser(
                "update enclave.sessions set authenticated_at = now() - interval '10 minutes' where user_id <> $1",
                [UUID()])
            let path = NSTemporaryDirectory() + "stale-\(UUID()).zip"
            await #expect(throws: AccessError.self) {
                try await fixture.rights.copy(owner, practice: practice, request: request, passphrase: nil, path: path)
            }
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }
}
