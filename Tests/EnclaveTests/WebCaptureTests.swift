import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// The snippet's page views and forms, and calls to pool numbers, against PostgreSQL.
@Suite("Capture: website visitors, pool numbers and forms")
struct WebCaptureTests {
    static let origin = "https://www.smile.test"
    static let pool = ["+15550207001", "+15550207002", "+15550207003", "+15550207004"]

    struct Fixture {
        let twilio: TwilioCaptureTests.Fixture
        let web: WebCapture
        let key: String
        let formSource: UUID
        var leads: LeadsFixture { twilio.leads }

        func view(
            _ token: String? = nil, _ parameters: [String: String] = [:], origin: String = WebCaptureTests.origin,
            from address: String = "198.51.100.1"
        ) async throws -> WebCapture.View {
            try await web.view(
                publicKey: key, origin: origin, token: token, landingPath: "/implants?patient=x#top",
                parameters: parameters, client: address)
        }

        func superuser<T: Sendable>(_ sql: String, _ decode: (PostgresRows) throws -> T) async throws -> T {
            let connection = try await leads.base.keys.database.connect()
            defer { Task { await connection.close() } }
            return try decode(try await connection.query(sql))
        }
    }

    static func with(_ body: (Fixture) async throws -> Void) async throws {
        try await TwilioCaptureTests.with { twilio in
            let base = twilio.leads.base
            let (form, _) = try await base.services.sources.create(
                base.ownerAToken, practice: base.practiceA, kind: "form", label: "Contact form")
            try await base.services.sources.addNumbers(
                base.ownerAToken, practice: base.practiceA, source: twilio.source, numbers: Self.pool)
            let property = try await base.services.sources.createWebProperty(
                base.ownerAToken, practice: base.practiceA, name: "Smile website", origins: [Self.origin],
                callSource: twilio.source, formSource: form.id, mainNumber: "+1 555 010 9999")
            try await body(
                Fixture(
                    twilio: twilio, web: WebCapture(ingest: twilio.leads.ingest), key: property.publicKey,
                    formSource: form.id))
        }
    }

    @Test(
        "a visitor keeps a pool number; nobody recent loses theirs; an address holds two; other origins get 403"
    )
    func numbers() async throws {
        try await Self.with { fixture in
            let first = try await fixture.view()
            #expect(Self.pool.contains(first.number ?? "") && first.mainNumber == "+15550109999")
            #expect(try await fixture.view(first.token).number == first.number)
            #expect(try await fixture.view(first.token).token == first.token)
            let second = try await fixture.view()
            #expect(second.number != nil && second.number != first.number && second.token != first.token)
            // The same address again: it holds two already, so the page keeps the main number.
            let third = try await fixture.view()
            #expect(third.number == nil && third.mainNumber == "+15550109999")
            // Other addresses take the free numbers; once the pool is spent, nobody loses theirs.
            let fourth = try await fixture.view(from: "198.51.100.2")
            let fifth = try await fixture.view(from: "198.51.100.3")
            let sixth = try await fixture.view(from: "198.51.100.4")
            #expect(Set([first.number, second.number, fourth.number, fifth.number]).count == 4)
            #expect(sixth.number == nil)
            #expect(try await fixture.view(first.token).number == first.number)
            #expect(try await fixture.view(second.token).number == second.number)
            // Thirty minutes unseen, a number is free again.
            _ = try await fixture.superuser(
                "update enclave.visitor_sessions set last_seen_at = now() - interval '31 minutes' where number = '\(try #require(fifth.number))'"
            ) { _ in 0 }
            #expect(try await fixture.view(from: "198.51.100.5").number == fifth.number)

            await #expect(throws: AccessError(.forbidden, "this site may not use this key")) {
                try await fixture.view(origin: "https://evil.test")
            }
            await #expect(throws: AccessError(.notFound, "no such web property")) {
                try await fixture.web.view(
                    publicKey: "pk_" + String(repeating: "a", count: 24), origin: Self.origin, token: nil,
                    landingPath: "/", parameters: [:])
            }
        }
    }

    @Test("a call to the number shown takes the visitor's campaign and click id; other URL parameters are never stored")
    func callAttribution() async throws {
        try await Self.with { fixture in
            let visitor = try await fixture.view(
                nil,
                ["utm_source": "google", "utm_campaign": "implants-fall", "gclid": "TEST123", "patient": "Jane Canary"])
            let number = try #require(visitor.number)
            var call = TwilioCaptureTests.call(TwilioCaptureTests.sid)
            call[call.firstIndex { $0.0 == "To" } ?? 0].1 = number
            let (stored, _) = try await fixture.twilio.capture.incomingCall(try fixture.twilio.request("voice", call))
            let lead = try await fixture.leads.leads.get(
                fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, lead: stored.leadID)
            #expect(lead.attribution.source == "google" && lead.attribution.gclid == "TEST123")
            #expect(lead.attribution.campaign == "implants-fall" && lead.attribution.landingPage == "/implants")
            let canary = try await fixture.superuser(
                "select count(*)::int8 as n from enclave.visitor_sessions s where s::text like '%Canary%' or s::text like '%patient%'"
            ) { try $0.first?.decode(Int.self, "n") }
            #expect(canary == 0)

            // Thirty minutes after the visitor's last page, a call to the number is nobody's.
            try await fixture.leads.base.superuser(
                "update enclave.visitor_sessions set last_seen_at = now() - interval '31 minutes'")
            let later = "CA" + String(repeating: "77", count: 16)
            var second = TwilioCaptureTests.call(later)
            second[second.firstIndex { $0.0 == "To" } ?? 0].1 = number
            let (unattributed, _) = try await fixture.twilio.capture.incomingCall(
                try fixture.twilio.request("voice", second))
            let plain = try await fixture.leads.leads.get(
                fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, lead: unattributed.leadID)
            #expect(plain.attribution.gclid == nil && plain.attribution.campaign == "implants")
        }
    }

    @Test("a form is stored sealed with the visitor's attribution; a honeypot or a two-second fill stores nothing")
    func forms() async throws {
        try await Self.with { fixture in
            let visitor = try await fixture.view(nil, ["utm_source": "facebook", "fbclid": "FB1"])
            let before = try await fixture.leads.leadCount()
            func submit(_ honeypot: String?, _ elapsed: Int, origin: String = Self.origin) async throws -> IngestResult?
            {
                try await fixture.web.submit(
                    publicKey: fixture.key, origin: origin,
                    .init(
                        token: visitor.token, fields: ["name": "Jane Canary", "phone": "(555) 867-5309"],
                        honeypot: honeypot, elapsedMilliseconds: elapsed, pageURL: "https://www.smile.test/contact"),
                    context: RequestContext())
            }
            #expect(try await submit("I am a bot", 9_000) == nil)
            #expect(try await submit(nil, 300) == nil)
            #expect(try await fixture.leads.leadCount() == before)
            await #expect(throws: AccessError(.forbidden, "this site may not use this key")) {
                try await submit(nil, 9_000, origin: "https://evil.test")
            }
            let stored = try #require(try await submit("", 9_000))
            #expect(try await fixture.leads.leadCount() == before + 1)
            let lead = try await fixture.leads.leads.get(
                fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, lead: stored.leadID)
            #expect(lead.kind == "form" && lead.formFields?["name"] == "Jane Canary")
            #expect(lead.attribution.source == "facebook" && lead.attribution.medium == "paid_social")
            #expect(lead.callerNumber == "+15558675309")
            let clear = try await fixture.superuser(
                "select count(*)::int8 as n from enclave.leads where position(convert_to('Canary', 'UTF8') in form_fields) > 0"
            ) { try $0.first?.decode(Int.self, "n") }
            #expect(clear == 0)
        }
    }
}

/// Pool numbers cannot be cycled (issue 25): one address sending views holds a bounded number.
@Suite("Capture: one address cannot take a property's pool")
struct PoolCyclingTests {
    @Test("sixty views from one address hold two numbers; the other visitors keep theirs")
    func sixtyViews() async throws {
        try await WebCaptureTests.with { fixture in
            let neighbour = try await fixture.view(from: "192.0.2.10")
            var numbers = Set<String>()
            for _ in 0..<60 {
                if let number = try await fixture.view(from: "203.0.113.66").number { numbers.insert(number) }
            }
            #expect(numbers.count == 2)
            #expect(try await fixture.view(neighbour.token, from: "192.0.2.10").number == neighbour.number)
            let held = try await fixture.superuser(
                """
                select count(distinct number)::int8 as n from enclave.visitor_sessions
                where number is not null and last_seen_at > now() - interval '30 minutes'
                """
            ) { try $0.first?.decode(Int.self, "n") }
            #expect(held == 3)
        }
    }
}

/// The snippet's rate limits are budgets in PostgreSQL (issue 25): every server process of a
/// deployment spends the same ones.
@Suite("Capture: one budget per address and per property, for every server")
struct CaptureBudgetTests {
    @Test("two servers over one database share an address's budget: 120 views a minute, then 429")
    func twoServersOneBudget() async throws {
        try await WebCaptureTests.with { fixture in
            let base = fixture.leads.base
            // A second server: its own pool and services, sharing nothing with the first but the database.
            let otherPool = ConnectionPool(
                configuration: try base.keys.database.configuration(DatabaseRole.app.variable),
                options: .init(maxConnections: 2))
            defer { Task { await otherPool.close() } }
            let other = WebCapture(
                ingest: IngestService(pool: otherPool, keys: TenantKeyStore(provider: base.services.masterKeys)))
            let servers = [fixture.web, other]
            try await waitForFreshMinute()
            var admitted = 0
            var refusal: AccessError?
            for view in 0..<130 {
                do {
                    _ = try await servers[view % 2].view(
                        publicKey: fixture.key, origin: WebCaptureTests.origin, token: nil, landingPath: "/",
                        parameters: [:], client: "203.0.113.7")
                    admitted += 1
                } catch let error as AccessError {
                    refusal = error
                }
            }
            #expect(admitted == 120)
            #expect(refusal?.code == .throttled)
            #expect((refusal?.retryAfter?.timeIntervalSinceNow ?? 0) > 0)
            // Another address still gets in.
            _ = try await fixture.view(from: "203.0.113.8")
        }
    }

    @Test("a property's key has 6,000 a minute; requests refused for their address do not spend it")
    func keyBudget() async throws {
        try await WebCaptureTests.with { fixture in
            try await waitForFreshMinute()
            // One address spends its 120 and is refused 80 more times...
            for _ in 0..<200 {
                try? await fixture.web.admit(publicKey: fixture.key, address: "198.51.100.200", cost: .view)
            }
            // ...which left 5,880 of the key's budget: 588 forms from other addresses.
            for n in 0..<588 {
                try await fixture.web.admit(
                    publicKey: fixture.key, address: "10.0.\(n / 250).\(n % 250)", cost: .form)
            }
            await #expect(throws: AccessError.self) {
                try await fixture.web.admit(publicKey: fixture.key, address: "10.9.9.9", cost: .view)
            }
            // Another property's key is untouched.
            try await fixture.web.admit(publicKey: "pk_other", address: "10.9.9.9", cost: .view)
        }
    }

    /// Waits until at least 20 seconds of the current minute remain, so a test's budget is one window.
    /// Waits for the start of the next minute (unless one has just begun): the budgets are per
    /// minute, and a loaded machine (the whole suite in parallel, twice through PgBouncer) once took
    /// more than the twenty seconds a start at second 40 left.
    func waitForFreshMinute() async throws {
        let now = Date().timeIntervalSince1970
        let second = now.truncatingRemainder(dividingBy: 60)
        if second > 2 { try await Task.sleep(for: .seconds(60.2 - second)) }
    }
}
