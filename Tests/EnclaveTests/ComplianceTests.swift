import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

extension IdentityFixture {
    var compliance: ComplianceService { services.compliance }
    func operations() async throws -> ComplianceOperations {
        ComplianceOperations(maintenance: try await keys.keys().maintenance)
    }

    /// A new user with `role` on `practice` (or an agency), signed in and freshly re-authenticated.
    func freshUser(_ email: String, role: Directory.Role? = nil, practice: UUID? = nil) async throws -> SessionToken {
        let user = try await directory.createUser(email: email, displayName: "Test User", password: Self.password)
        if let role, let practice { try await directory.grant(user: user, role: role, practice: practice) }
        return try await identity.signInFresh(email: email, password: Self.password).token
    }

    /// The number of rows of `sql` (a count) as the superuser.
    func count(_ sql: String, _ bindings: [any PostgresEncodable] = []) async throws -> Int {
        let connection = try await keys.database.connect()
        defer { Task { await connection.close() } }
        return try await connection.query(sql, bindings).first?.decode(Int.self, "n") ?? -1
    }
}

@Suite("Break-glass access")
struct BreakGlassTests {
    @Test(
        "a responder's emergency access reads a practice it has no other way into, audited with its id; the owner is told; expiry ends it at the next statement"
    )
    func expiry() async throws {
        try await IdentityFixture.with { fixture in
            let responder = try await fixture.freshUser("responder@platform.test")
            // Not a responder yet: refused, and nothing reaches practice B.
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.openBreakGlass(
                    responder, practice: fixture.practiceB, reason: "patient safety incident", seconds: 600)
            }
            try await (try await fixture.operations()).setResponder(email: "responder@platform.test", true)
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.openBreakGlass(
                    responder, practice: fixture.practiceB, reason: "short", seconds: 600)
            }
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.openBreakGlass(
                    responder, practice: fixture.practiceB, reason: "patient safety incident", seconds: 3601)
            }
            #expect(try await fixture.rawAccess(responder, practice: fixture.practiceB).rows == 0)
            let glass = try await fixture.compliance.openBreakGlass(
                responder, practice: fixture.practiceB, reason: "patient safety incident", seconds: 600)

            // Reads, audited with the break-glass id; never writes.
            let page = try await fixture.services.leads.list(responder, practice: fixture.practiceB)
            #expect(page.leads.count == 1)
            let audited = try await fixture.count(
                """
                select count(*)::int8 as n from enclave.audit_events
                where tenant_id = $1 and action = 'phi.read' and details ->> 'break_glass' = $2
                """,
                [fixture.practiceB, glass.uuidString.lowercased()])
            #expect(audited == 1)
            #expect(try await fixture.rawAccess(responder, practice: fixture.practiceB).inserted == false)
            await #expect(throws: AccessError.self) {
                try await fixture.services.leads.redact(
                    responder, practice: fixture.practiceB, lead: page.leads[0].id, fields: [.callerName])
            }
            // Another practice stays closed.
            #expect(try await fixture.rawAccess(responder, practice: fixture.practiceA).rows == 0)

            // The owner sees it (banner and alert) and an email is queued.
            let owner = try await fixture.freshUser("owner2@b.test", role: .practiceOwner, practice: fixture.practiceB)
            let seen = try await fixture.compliance.breakGlass(owner, practice: fixture.practiceB)
            #expect(seen.map(\.id) == [glass] && seen[0].acknowledgedAt == nil && seen[0].active)
            let alerts = try await fixture.compliance.alerts(owner, practice: fixture.practiceB)
            #expect(alerts.map(\.kind) == [.breakGlass])
            #expect(!(try await fixture.compliance.alertEvents(owner, id: alerts[0].id)).isEmpty)
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.outbox where tenant_id = $1 and payload ->> 'event' = 'alert'",
                    [fixture.practiceB]) == 1)
            #expect(try await fixture.compliance.acknowledgeBreakGlass(owner, id: glass))
            #expect(
                try await fixture.compliance.breakGlass(owner, practice: fixture.practiceB)[0].acknowledgedAt != nil)
            // The responder cannot acknowledge for the owner.
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.acknowledgeBreakGlass(responder, id: glass)
            }

            // Expiry ends access at the next statement, inside the same transaction.
            try await fixture.access.withPractice(responder, practice: fixture.practiceB, scope: .leadsRead) {
                transaction in
                let before = try await transaction.query("select count(*)::int8 as n from enclave.leads").first?.decode(
                    Int.self, "n")
                #expect(before == 1)
                try await fixture.superuser(
                    "update enclave.break_glass set expires_at = clock_timestamp() where id = $1", [glass])
                let after = try await transaction.query("select count(*)::int8 as n from enclave.leads").first?.decode(
                    Int.self, "n")
                #expect(after == 0)
            }
            await #expect(throws: AccessError.self) {
                try await fixture.services.leads.list(responder, practice: fixture.practiceB)
            }
            // The operators' list shows it, ended.
            let listed = try await (try await fixture.operations()).breakGlass()
            #expect(listed.map(\.id) == [glass] && !listed[0].active)
        }
    }

    @Test("break-glass cannot be opened without a re-authentication in the last five minutes")
    func needsReauthentication() async throws {
        try await IdentityFixture.with { fixture in
            _ = try await fixture.directory.createUser(
                email: "stale@platform.test", displayName: "Stale", password: IdentityFixture.password)
            try await (try await fixture.operations()).setResponder(email: "stale@platform.test", true)
            let stale = try await fixture.identity.signInEnrollingMFA(
                email: "stale@platform.test", password: IdentityFixture.password)
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await fixture.compliance.openBreakGlass(
                    stale.token, practice: fixture.practiceB, reason: "patient safety incident", seconds: 60)
            }
        }
    }
}

@Suite("Retention and legal holds")
struct RetentionTests {
    /// Practice A with retention of 30 days for leads; two leads 40 and 10 days before `clock`.
    static func seed(_ fixture: IdentityFixture, clock: Date) async throws -> (old: UUID, recent: UUID) {
        try await fixture.superuser(
            "insert into enclave.practice_compliance (practice_id, leads_days, transcripts_days) values ($1, 30, 5)",
            [fixture.practiceA])
        let maintenance = (try await fixture.operations()).maintenance
        return try await maintenance.withTenant(fixture.practiceA) { transaction in
            let source = try #require(
                try await transaction.query("select id from enclave.tracking_sources limit 1 /* test: any source */")
                    .first?.decode(
                        UUID.self, "id"))
            let old = UUID()
            let recent = UUID()
            for (id, days) in [(old, 40.0), (recent, 10.0)] {
                try await transaction.query(
                    "insert into enclave.leads (tenant_id, id, source_id, kind, occurred_at, transcript) values ($1, $2, $3, 'call', $4, '\\x01')",
                    [fixture.practiceA, id, source, clock.addingTimeInterval(-days * 86_400)])
            }
            return (old, recent)
        }
    }

    @Test("a legal hold stops a purge the clock says is due; released, the purge runs and records its counts")
    func holdStopsPurge() async throws {
        try await IdentityFixture.with { fixture in
            let clock = Date().addingTimeInterval(-3600)
            let (old, recent) = try await Self.seed(fixture, clock: clock)
            let operations = ComplianceOperations(
                maintenance: (try await fixture.operations()).maintenance, clock: { clock })
            func exists(_ lead: UUID) async throws -> Bool {
                try await fixture.count("select count(*)::int8 as n from enclave.leads where id = $1", [lead]) == 1
            }
            // Held (the lead itself), the due lead stays; its transcript too.
            let hold = try await operations.placeHold(
                practice: fixture.practiceA, leads: [old], reason: "litigation 2026-114")
            var summary = try await operations.purge()
            #expect(summary.leads == 0)
            let oldStays = try await exists(old)
            let recentStays = try await exists(recent)
            #expect(oldStays && recentStays)
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.leads where id = $1 and transcript is not null", [old])
                    == 1)
            // The recent lead's transcript (5 days) is due and not held.
            #expect(summary.transcripts == 1)
            // A hold on the whole practice stops everything, and offboarding.
            let whole = try await operations.placeHold(
                practice: fixture.practiceA, leads: nil, reason: "regulator inquiry")
            try await operations.releaseHold(hold)
            summary = try await operations.purge()
            #expect(summary.held == 1 && summary.leads == 0)
            #expect(try await exists(old))
            await #expect(throws: (any Error).self) {
                try await Offboarding(keys: try await fixture.keys.keys()).offboard(fixture.practiceA)
            }
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.practices where id = $1 and status = 'active'",
                    [fixture.practiceA]) == 1)
            // Released: the purge removes the due lead only, and records it.
            try await operations.releaseHold(whole)
            summary = try await operations.purge()
            #expect(summary.leads == 1)
            let gone = try await !exists(old)
            #expect(gone)
            #expect(try await exists(recent))
            let purged = try await fixture.count(
                """
                select count(*)::int8 as n from enclave.audit_events
                where tenant_id = $1 and action = 'retention.purged' and (details ->> 'leads')::int = 1
                """,
                [fixture.practiceA])
            #expect(purged == 1)
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.audit_events where tenant_id = $1 and action like 'legal_hold.%'",
                    [fixture.practiceA]) == 4)
        }
    }

    @Test("a clock ahead of the database cannot purge early; audit events younger than six years cannot be removed")
    func clocks() async throws {
        try await IdentityFixture.with { fixture in
            _ = try await Self.seed(fixture, clock: Date())
            let ahead = ComplianceOperations(
                maintenance: (try await fixture.operations()).maintenance,
                clock: { Date().addingTimeInterval(86_400 * 365) })
            await #expect(throws: (any Error).self) { try await ahead.purge() }
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.leads where tenant_id = $1", [fixture.practiceA]) == 3)
            let owner = try await fixture.keys.database.connect(DatabaseRole.owner.variable)
            defer { Task { await owner.close() } }
            _ = try await fixture.keys.keys().maintenance.linkAndVerify()
            await #expect(throws: PostgresError.self) {
                try await owner.query(
                    "select enclave_private.apply_audit_retention($1, 1, repeat('0', 64))", [fixture.practiceA])
            }
        }
    }

    @Test("an owner sets retention (re-authenticated) and places and releases holds; staff and agencies cannot")
    func settings() async throws {
        try await IdentityFixture.with { fixture in
            let owner = try await fixture.freshUser("owner2@a.test", role: .practiceOwner, practice: fixture.practiceA)
            var settings = ComplianceSettings(
                recordingsDays: 90, leadsDays: 2555, readsPerHour: 50, hoursStart: 8, hoursEnd: 18,
                timeZone: "America/New_York")
            try await fixture.compliance.setSettings(owner, practice: fixture.practiceA, settings)
            #expect(try await fixture.compliance.settings(owner, practice: fixture.practiceA) == settings)
            settings.timeZone = "Mars/Olympus"
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.setSettings(owner, practice: fixture.practiceA, settings)
            }
            settings.timeZone = "UTC"
            settings.leadsDays = 0
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.setSettings(owner, practice: fixture.practiceA, settings)
            }
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.setSettings(
                    fixture.memberToken, practice: fixture.practiceA, ComplianceSettings())
            }
            let hold = try await fixture.compliance.placeHold(
                owner, practice: fixture.practiceA, leads: nil, reason: "subpoena")
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.releaseHold(fixture.memberToken, id: hold)
            }
            #expect(try await fixture.compliance.holds(owner, practice: fixture.practiceA).map(\.id) == [hold])
            #expect(try await fixture.compliance.releaseHold(owner, id: hold))
        }
    }
}

@Suite("Access alerts")
struct AccessAlertTests {
    @Test(
        "reads over the threshold, reads after hours, failed sign-ins and close expiries fire once each, and stay quiet below"
    )
    func thresholds() async throws {
        try await IdentityFixture.with { fixture in
            let operations = try await fixture.operations()
            // Three reads of practice A by the agency member.
            for _ in 0..<3 {
                _ = try await fixture.services.leads.list(fixture.memberToken, practice: fixture.practiceA)
            }
            // Quiet: the default threshold (200) and all-day hours.
            #expect(try await operations.scanAlerts() == 0)
            // Threshold 2: the member's three reads fire one alert, for the owner and the agency's admin.
            let hour =
                Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: Date()).hour
                ?? 0
            try await fixture.superuser(
                "insert into enclave.practice_compliance (practice_id, reads_per_hour, hours_start, hours_end) values ($1, 3, 0, 24)",
                [fixture.practiceA])
            #expect(try await operations.scanAlerts() == 0)  // 3 is not more than 3
            try await fixture.superuser(
                "update enclave.practice_compliance set reads_per_hour = 2 where practice_id = $1", [fixture.practiceA])
            #expect(try await operations.scanAlerts() == 1)
            #expect(try await operations.scanAlerts() == 0)  // once
            let owner = try await fixture.freshUser("owner2@a.test", role: .practiceOwner, practice: fixture.practiceA)
            let alerts = try await fixture.compliance.alerts(owner, practice: fixture.practiceA)
            #expect(alerts.map(\.kind) == [.readsVolume])
            #expect(alerts[0].subjectEmail == "member@agency.test" && alerts[0].details["leads_read"] == "3")
            #expect(try await fixture.compliance.alertEvents(owner, id: alerts[0].id).count == 3)
            #expect(
                try await fixture.compliance.alerts(fixture.adminToken, agency: fixture.agency).map(\.id) == [
                    alerts[0].id
                ])
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.alerts(fixture.memberToken, agency: fixture.agency)
            }
            // After hours: business hours that exclude this hour (UTC).
            try await fixture.superuser(
                "update enclave.practice_compliance set reads_per_hour = 1000, hours_start = $2::int2, hours_end = $3::int2 where practice_id = $1",
                [fixture.practiceA, (hour + 2) % 24, (hour + 3) % 24 == 0 ? 24 : (hour + 3) % 24])
            #expect(try await operations.scanAlerts() == 1)
            #expect(try await fixture.compliance.alerts(owner, practice: fixture.practiceA).first?.kind == .afterHours)
            // Failed sign-ins: four are quiet, the fifth fires.
            let staff = try await fixture.directory.createUser(
                email: "staff@a.test", displayName: "Sam", password: IdentityFixture.password)
            try await fixture.directory.grant(user: staff, role: .practiceStaff, practice: fixture.practiceA)
            for attempt in 1...5 {
                _ = try? await fixture.identity.login(email: "staff@a.test", password: "wrong password \(attempt)")
                #expect(try await operations.scanAlerts() == (attempt == 5 ? 1 : 0))
            }
            // An agreement a few days from expiry: the 7-day alert, once.
            try await fixture.superuser(
                """
                insert into enclave.baas (agency_id, practice_id, scopes, status, effective_at, expires_at, document_sha256, proposed_by)
                values ($1, $2, '{leads.read}', 'active', now() - interval '1 day', now() + interval '5 days', sha256('x'), $3)
                """,
                [fixture.agency, fixture.practiceB, fixture.admin])
            #expect(try await operations.scanAlerts() == 1)
            #expect(try await operations.scanAlerts() == 0)
            let kinds = try await fixture.compliance.alerts(owner, practice: fixture.practiceA).map(\.kind)
            #expect(Set(kinds) == [.readsVolume, .afterHours, .failedSignins])
            #expect(try await fixture.compliance.acknowledgeAlert(owner, id: alerts[0].id))
            // Every alert queued one PHI-free notification.
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.outbox where payload ->> 'event' = 'alert'") == 4)
        }
    }
}

@Suite("Exports a practice opens without Enclave")
struct PracticeExportTests {
    @Test("the owner's download is a tar of CSV, JSON and audio, age-encrypted to the practice's key; age -d opens it")
    func ownerExport() async throws {
        try await LeadsFixture.with { fixture in
            var names = Set<String>()
            var last: UUID?
            for index in 0..<3 {
                names.insert("Patient \(index)")
                last = try await fixture.ingest.ingestCall(try fixture.request(fixture.call("Patient \(index)"))).leadID
            }
            let lead = try #require(last)
            let audio = try SecureRandom.bytes(200_000)
            _ = try await fixture.ingest.attachRecording(
                sourceID: fixture.source,
                signature: try IngestSignature.sign(
                    audio, secret: fixture.secret, timestamp: Int64(Date().timeIntervalSince1970)),
                leadID: lead, contentType: "audio/mpeg", body: ChunkedBytes(audio, pieceSize: 70_000))
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-age-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: work) }
            let (identity, recipient) = try AgeTool.keygen(in: work)
            let base = fixture.base
            let owner = try await base.freshUser("owner2@a.test", role: .practiceOwner, practice: base.practiceA)
            // Not re-authenticated, or not an owner: refused, nothing written.
            let path = work.appendingPathComponent("export.tar.age").path
            await #expect(throws: AccessError.self) {
                try await base.compliance.export(
                    base.memberToken, practice: base.practiceA, passphrase: "long enough passphrase", path: path)
            }
            #expect(!FileManager.default.fileExists(atPath: path))
            // An owner who signed in with MFA but has not re-authenticated: refused too, and the
            // settings (a shorter retention deletes PHI) the same.
            let staleOwner = try await base.directory.createUser(
                email: "stale-owner@a.test", displayName: "Stale", password: IdentityFixture.password)
            try await base.directory.grant(user: staleOwner, role: .practiceOwner, practice: base.practiceA)
            let stale = try await base.identity.signInEnrollingMFA(
                email: "stale-owner@a.test", password: IdentityFixture.password
            ).token
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await base.compliance.export(
                    stale, practice: base.practiceA, passphrase: "long enough passphrase", path: path)
            }
            await #expect(throws: AccessError(.reauthenticationRequired, "confirm your password to continue")) {
                try await base.compliance.setSettings(stale, practice: base.practiceA, ComplianceSettings(leadsDays: 1))
            }
            #expect(!FileManager.default.fileExists(atPath: path))
            var settings = ComplianceSettings()
            settings.ageRecipient = recipient
            try await base.compliance.setSettings(owner, practice: base.practiceA, settings)
            let counts = try await base.compliance.export(owner, practice: base.practiceA, passphrase: nil, path: path)
            #expect(counts == PracticeArchive.Counts(leads: 4, recordings: 1))
            let tar = work.appendingPathComponent("export.tar").path
            #expect(try AgeTool.decrypt(path, identity: identity, to: tar))
            try AgeTool.untar(tar, into: work.appendingPathComponent("out"))
            let json = try #require(
                FileManager.default.contents(atPath: work.appendingPathComponent("out/leads.json").path))
            let leads = try #require(try JSONSerialization.jsonObject(with: json) as? [[String: String]])
            #expect(Set(leads.compactMap { $0["caller_name"] }) == names)
            #expect(leads.count == 4)
            let mp3 = FileManager.default.contents(
                atPath: work.appendingPathComponent("out/recordings/\(lead.uuidString.lowercased()).mp3").path)
            #expect(mp3.map(Array.init) == audio)
            let csv = String(
                decoding: try #require(
                    FileManager.default.contents(atPath: work.appendingPathComponent("out/leads.csv").path)),
                as: UTF8.self)
            #expect(names.allSatisfy { csv.contains($0) })
            #expect(
                try await base.count(
                    "select count(*)::int8 as n from enclave.audit_events where tenant_id = $1 and action = 'phi.export'",
                    [base.practiceA]) == 1)
        }
    }
}

/// Keeps what the mailer sends (the SMTP transport itself is tested against a real server in
/// EnclaveHTTPTests/MailTests).
final class CapturingTransport: MailTransport {
    let sent = Locked<[MailMessage]>([])
    func send(_ message: MailMessage) async throws { sent.withLock { $0.append(message) } }
}

@Suite("Notifications")
struct NotificationTests {
    @Test(
        "a proposal is emailed to the practice's owners; an alert about agency staff to the owners and the agency's admins"
    )
    func recipients() async throws {
        try await IdentityFixture.with { fixture in
            try await fixture.superuser(
                "insert into enclave.practice_compliance (practice_id, reads_per_hour) values ($1, 1)",
                [fixture.practiceA])
            for _ in 0..<2 {
                _ = try await fixture.services.leads.list(fixture.memberToken, practice: fixture.practiceA)
            }
            #expect(try await fixture.operations().scanAlerts() == 1)
            let transport = CapturingTransport()
            let mailer = Mailer(
                maintenance: try await fixture.keys.keys().maintenance, transport: transport,
                templates: try MailTemplates.load(), from: "enclave@platform.test", consoleURL: "https://console.test")
            let summary = try await mailer.deliverDue()
            #expect(summary.failed == 0 && summary.retrying == 0)
            let sent = transport.sent.withLock { $0 }.map { "\($0.to) | \($0.subject)" }.sorted()
            #expect(
                sent == [
                    "admin@agency.test | Access alert for Practice A",
                    "owner@a.test | Access alert for Practice A",
                    "owner@a.test | Growth Agency proposed a Business Associate Agreement with Practice A",
                ])
            let bodies = transport.sent.withLock { $0 }.map(\.body)
            #expect(bodies.allSatisfy { $0.contains("https://console.test") })
            #expect(try await mailer.deliverDue() == Mailer.Summary())
        }
    }
}
