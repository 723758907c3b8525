import ArgumentParser
import Enclave
import Foundation
import Postgres
import Sealing

extension EnclaveCommand {
    /// `enclave demo`: demo data for `scripts/demo`.
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Demo data: an agency, three practices, users with MFA, agreements, sources and leads.",
            subcommands: [Seed.self, Code.self])

        /// What the demo created, with the credentials to use it (synthetic people only).
        struct Credentials: Codable {
            struct User: Codable {
                var email: String
                var password: String
                var role: String
                var totpSecret: String
            }
            struct Practice: Codable {
                var id: UUID
                var name: String
                var owner: String
                var agreement: String
            }
            struct Source: Codable {
                var practice: UUID
                var id: UUID
                var kind: String
                /// The ingest secret; a `twilio` source's is its auth token.
                var secret: String
                /// `twilio` for a Twilio source (nil: the signed JSON format), with its account SID.
                var provider: String?
                var account: String?
            }
            /// A practice's website: the snippet's key, the origins it allows, its pool numbers.
            struct Site: Codable {
                var practice: UUID
                var publicKey: String
                var origins: [String]
                var numbers: [String]
                var mainNumber: String
            }
            var agency: UUID
            var practices: [Practice]
            var users: [User]
            var sources: [Source]
            var sites: [Site]?

            static func load(_ directory: String) throws -> Credentials {
                let path = directory + "/credentials.json"
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ConfigurationError("\(path) is missing: run scripts/demo first")
                }
                return try JSONDecoder().decode(Credentials.self, from: data)
            }
        }

        /// `enclave demo seed`.
        struct Seed: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create the demo data once; writes its credentials to <dir>/credentials.json (mode 0600).")
            @OptionGroup var maintenance: MaintenanceOptions
            @Option(help: "Where the credentials go.") var dir = ".enclave/demo"
            @Option(help: "Leads per practice (about 70% calls, most with a recording; the rest forms).")
            var leadsPerPractice = 100
            @Option(help: "More practices with active agreements, one owner for all (for benchmarks).")
            var extraPractices = 0
            @Option(
                help: "An origin the practices' websites are served from (the snippet works there); repeat for more.")
            var siteOrigin: [String] = ["http://127.0.0.1:8090"]

            func run() async throws {
                try await reportingErrors {
                    let keys = try await maintenance.keyManagement()
                    if let existing = try? Credentials.load(dir) {
                        let found = try await keys.maintenance.pool.query(
                            "select count(*)::int8 as n from enclave.practices where id = any($1)",
                            [existing.practices.map(\.id)]
                        ).first?.decode(Int.self, "n")
                        if found == existing.practices.count {
                            print("demo: data already in place (\(dir)/credentials.json)")
                            return
                        }
                    }
                    let taken = try await keys.maintenance.pool.query(
                        "select count(*)::int8 as n from enclave.practices where name = $1", ["Bright Smile Dental"]
                    ).first?.decode(Int.self, "n")
                    guard taken == 0 else {
                        throw ConfigurationError(
                            "the database has demo practices but \(dir)/credentials.json does not match: run scripts/demo --reset"
                        )
                    }
                    try await seed(keys)
                    await keys.maintenance.pool.close()
                }
            }

            func seed(_ keys: KeyManagement) async throws {
                let services = EnclaveServices(
                    pool: ConnectionPool(
                        configuration: try ConnectionConfiguration.forRole(.app), options: .init(maxConnections: 4)),
                    authPool: ConnectionPool(
                        configuration: try ConnectionConfiguration.forRole(.auth), options: .init(maxConnections: 1)),
                    masterKeys: keys.masterKeys, masterKeyVersion: keys.activeMasterVersion)
                let identity = services.identity
                let people = Directory(pool: keys.maintenance.pool)
                let agreements = services.agreements
                let sources = services.sources
                let password = "demo password 2026"
                var users: [Credentials.User] = []

                /// Creates a user, signs in, enrolls TOTP and re-authenticates; returns a session that
                /// reaches PHI and may take sensitive actions for five minutes.
                /// Without a role: a platform responder (who may open break-glass access).
                func person(
                    _ email: String, _ name: String, _ role: Directory.Role?, agency: UUID? = nil, practice: UUID? = nil
                )
                    async throws -> SessionToken
                {
                    let id = try await people.createUser(email: email, displayName: name, password: password)
                    if let role {
                        try await people.grant(user: id, role: role, agency: agency, practice: practice)
                    } else {
                        try await ComplianceOperations(maintenance: keys.maintenance).setResponder(email: email, true)
                    }
                    let token = try await identity.login(email: email, password: password).token
                    let enrollment = try await identity.beginMFAEnrollment(token, issuer: "Enclave demo")
                    let totp = try TOTP(secret: SecretBytes(copying: Base32.decode(enrollment.secret) ?? []))
                    // Earlier steps, so the current code is still unused when the demo prints it: one
                    // completes MFA, the next re-authenticates (proposing, approving, assigning and
                    // creating sources are sensitive actions).
                    let earlier = Date().addingTimeInterval(-60)
                    try await identity.confirmMFA(token, code: try totp.code(at: earlier), at: earlier)
                    let previous = earlier.addingTimeInterval(30)
                    let fresh = try await identity.reauthenticate(
                        token, password: password, code: try totp.code(at: previous), at: previous)
                    users.append(
                        .init(
                            email: email, password: password, role: role?.rawValue ?? "platform_responder",
                            totpSecret: enrollment.secret))
                    return fresh
                }

                /// A practice's call line and website form, with their secrets.
                func demoSources(_ owner: SessionToken, _ practice: UUID) async throws -> [Credentials.Source] {
                    var entries: [Credentials.Source] = []
                    for (kind, label) in [("call", "Main line"), ("form", "Website contact form")] {
                        let (source, secret) = try await sources.create(
                            owner, practice: practice, kind: kind, label: label,
                            defaults: Attribution(source: "google", medium: "cpc", campaign: "new patients"))
                        entries.append(.init(practice: practice, id: source.id, kind: kind, secret: secret))
                    }
                    return entries
                }

                let names = [
                    ("Bright Smile Dental", "olivia@brightsmile.demo", "Olivia Owens", "active"),
                    ("Lakeside Dermatology", "liam@lakeside.demo", "Liam Lake", "proposed"),
                    ("Northside Pediatrics", "noah@northside.demo", "Noah North", "revoked"),
                ]
                let agency = try await people.createAgency(name: "Brightline Marketing")
                _ = try await person("rita@enclave.demo", "Rita Responder", nil)
                let admin = try await person("ada@brightline.demo", "Ada Admin", .agencyAdmin, agency: agency)
                let member = try await person("max@brightline.demo", "Max Member", .agencyMember, agency: agency)
                let memberID = try await identity.me(member).userID
                var practices: [Credentials.Practice] = []
                var sourceEntries: [Credentials.Source] = []
                var sites: [Credentials.Site] = []
                let digest = SHA256.hash(Array("Brightline Marketing business associate agreement, signed".utf8))
                for (name, email, owner, state) in names {
                    let practice = try await PracticeRegistry(keys: keys).create(name: name)
                    let ownerToken = try await person(email, owner, .practiceOwner, practice: practice)
                    let agreement = try await agreements.propose(
                        admin, agency: agency, practice: practice, scopes: [.leadsRead, .recordingsListen],
                        effectiveAt: Date().addingTimeInterval(-60), expiresAt: Date().addingTimeInterval(365 * 86_400),
                        documentSHA256: digest)
                    if state != "proposed" { try await agreements.approve(ownerToken, agreement: agreement) }
                    if state == "revoked" { try await agreements.revoke(ownerToken, agreement: agreement) }
                    try await agreements.assign(admin, agency: agency, practice: practice, member: memberID)
                    sourceEntries += try await demoSources(ownerToken, practice)
                    // Keyword sets that tag calls' transcripts (`enclave transcripts run`).
                    for (tag, phrases, weight) in DemoLeads.keywordSets {
                        _ = try await services.keywords.save(
                            ownerToken, practice: practice, name: tag, phrases: phrases, weight: weight)
                    }
                    // A Twilio line, with a made-up account: point a local stand-in at it (README).
                    let account = "AC" + (try SecureRandom.bytes(16)).map { String(format: "%02x", $0) }.joined()
                    let authToken = (try SecureRandom.bytes(16)).map { String(format: "%02x", $0) }.joined()
                    let twilio = try await sources.createTwilio(
                        ownerToken, practice: practice, label: "Twilio line", trackingNumber: nil,
                        defaults: Attribution(source: "google", medium: "cpc", campaign: "new patients"),
                        twilio: TwilioSettings(
                            accountSID: account, authToken: authToken,
                            forwardTo: "+1 555 010 \(1000 + practices.count)",
                            announceRecording: true))
                    sourceEntries.append(
                        .init(
                            practice: practice, id: twilio.id, kind: "call", secret: authToken, provider: "twilio",
                            account: account))
                    // Its website: three pool numbers on the Twilio line, forms to the contact form.
                    let numbers = (0..<3).map { "+1555020\(practices.count)\(100 + $0)" }
                    try await sources.addNumbers(ownerToken, practice: practice, source: twilio.id, numbers: numbers)
                    let main = "+1555010\(1000 + practices.count)"
                    let site = try await sources.createWebProperty(
                        ownerToken, practice: practice, name: "\(name) website", origins: siteOrigin,
                        callSource: twilio.id,
                        formSource: sourceEntries.last { $0.practice == practice && $0.kind == "form" }?.id,
                        mainNumber: main)
                    sites.append(
                        .init(
                            practice: practice, publicKey: site.publicKey, origins: siteOrigin, numbers: numbers,
                            mainNumber: main))
                    practices.append(.init(id: practice, name: name, owner: email, agreement: state))
                    print("demo: \(name): owner \(email), agreement with Brightline Marketing \(state)")
                }
                if extraPractices > 0 {
                    let email = "owen@bench.demo"
                    var ownerToken: SessionToken?
                    let adminID = try await identity.me(admin).userID
                    for index in 1...extraPractices {
                        let practice = try await PracticeRegistry(keys: keys).create(name: "Bench Practice \(index)")
                        if let ownerToken {
                            try await people.grant(
                                user: try await identity.me(ownerToken).userID, role: .practiceOwner,
                                practice: practice)
                        } else {
                            ownerToken = try await person(email, "Owen Bench", .practiceOwner, practice: practice)
                        }
                        let owner = try ownerToken.orThrow()
                        let agreement = try await agreements.propose(
                            admin, agency: agency, practice: practice, scopes: [.leadsRead, .recordingsListen],
                            effectiveAt: Date().addingTimeInterval(-60),
                            expiresAt: Date().addingTimeInterval(Double(index) * 86_400), documentSHA256: digest)
                        try await agreements.approve(owner, agreement: agreement)
                        for person in [memberID, adminID] {
                            try await agreements.assign(admin, agency: agency, practice: practice, member: person)
                        }
                        sourceEntries += try await demoSources(owner, practice)
                        practices.append(
                            .init(id: practice, name: "Bench Practice \(index)", owner: email, agreement: "active"))
                    }
                    print("demo: \(extraPractices) more practices, owner \(email), agreements active")
                }

                let ingest = services.ingest
                var total = 0
                for practice in practices {
                    let call = try sourceEntries.first {
                        $0.practice == practice.id && $0.kind == "call" && $0.provider == nil
                    }.orThrow()
                    let form = try sourceEntries.first { $0.practice == practice.id && $0.kind == "form" }.orThrow()
                    for index in 0..<leadsPerPractice {
                        try await DemoLeads.ingest(
                            index: index, practiceIndex: practices.firstIndex { $0.id == practice.id } ?? 0, call: call,
                            form: form, ingest: ingest)
                        total += 1
                        if total % 50 == 0 { print("demo: \(total) leads stored") }
                    }
                }
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                let data = try encoder.encode(
                    Credentials(
                        agency: agency, practices: practices, users: users, sources: sourceEntries, sites: sites))
                let path = dir + "/credentials.json"
                guard
                    FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600])
                else { throw ConfigurationError("could not write \(path)") }
                await services.close()
                print("demo: \(total) leads in 3 practices; credentials in \(path)")
            }
        }

        /// `enclave demo code EMAIL`.
        struct Code: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract:
                    "Print a demo user's current TOTP code (waits for the next one if this one was printed already).")
            @Argument(help: "The demo user's email.") var email: String
            @Option(help: "Where the credentials are.") var dir = ".enclave/demo"

            func run() async throws {
                try await reportingErrors {
                    let credentials = try Credentials.load(dir)
                    guard let user = credentials.users.first(where: { $0.email == email }) else {
                        throw ConfigurationError("no demo user \(email)")
                    }
                    let totp = try TOTP(secret: SecretBytes(copying: Base32.decode(user.totpSecret) ?? []))
                    let usedPath = dir + "/codes-used.json"
                    var used =
                        (FileManager.default.contents(atPath: usedPath)).flatMap {
                            try? JSONDecoder().decode([String: Int64].self, from: $0)
                        } ?? [:]
                    // Each code works once per user: hand out a step at most once.
                    var step = Int64(Date().timeIntervalSince1970) / 30
                    if let last = used[email], step <= last {
                        step = last + 1
                        let wait = Double(step * 30) - Date().timeIntervalSince1970
                        if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000) + 50)) }
                    }
                    used[email] = step
                    FileManager.default.createFile(
                        atPath: usedPath, contents: try JSONEncoder().encode(used),
                        attributes: [.posixPermissions: 0o600])
                    print(try totp.code(at: Date(timeIntervalSince1970: Double(step * 30))))
                }
            }
        }
    }
}

extension Optional {
    func orThrow() throws -> Wrapped {
        guard let value = self else { throw ConfigurationError("missing demo data") }
        return value
    }
}

/// Synthetic leads for the demo: calls (most with a short recording) and web forms.
enum DemoLeads {
    static let first = ["Avery", "Jordan", "Riley", "Casey", "Morgan", "Quinn", "Harper", "Rowan", "Sage", "Emery"]
    static let last = ["Nguyen", "Garcia", "Smith", "Okafor", "Kowalski", "Haddad", "Lindqvist", "Tanaka", "Moreau"]
    /// The demo practices' keyword sets.
    static let keywordSets: [(String, [String], Int)] = [
        ("new patient", ["new patient", "first visit"], 2), ("appointment", ["appointment", "book", "schedule"], 1),
        ("insurance", ["insurance", "member number", "coverage"], 1), ("emergency", ["emergency", "severe pain"], 3),
    ]

    /// What a synthetic call's caller says (PHI the redacted form hides: the name, a date of birth,
    /// a member number).
    static func transcript(_ index: Int, name: String) -> String {
        switch index % 4 {
        case 0:
            "Thank you for calling. Hi, this is \(name), I am a new patient and would like to book a cleaning. "
                + "My date of birth is March 4th 1982."
        case 1:
            "Hello, \(name) here. I have severe pain in a back tooth, is this an emergency you can see today?"
        case 2:
            "Hi, it's \(name). Do you take my insurance? My member number is 4471 2290 1185."
        default:
            "Synthetic call: \(name) asks about an appointment next week."
        }
    }

    static let campaigns: [(String, String, String)] = [
        ("google", "cpc", "new patients"), ("google", "organic", "brand"), ("facebook", "social", "spring promo"),
        ("bing", "cpc", "emergency visits"), ("direct", "none", "referral"),
    ]

    static func ingest(
        index: Int, practiceIndex: Int, call: EnclaveCommand.Demo.Credentials.Source,
        form: EnclaveCommand.Demo.Credentials.Source, ingest: IngestService
    ) async throws {
        let name = "\(first[(index + practiceIndex) % first.count]) \(last[(index * 7 + practiceIndex) % last.count])"
        let number = String(format: "+1555%03d%04d", 200 + practiceIndex, index)
        let (source, medium, campaign) = campaigns[index % campaigns.count]
        let at = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-Double(index) * 6_900 - 600))
        let attribution =
            #""attribution": {"source": "\#(source)", "medium": "\#(medium)", "campaign": "\#(campaign)"}"#
        let isCall = index % 10 < 7
        let missed = index % 10 == 6
        let body =
            isCall
            ? #"{"caller_number": "\#(number)", "caller_name": "\#(name)", "started_at": "\#(at)", "duration_seconds": \#(missed ? 0 : 30 + index % 240), "disposition": "\#(missed ? "missed" : "answered")", "transcript": "\#(transcript(index, name: name))", \#(attribution)}"#
            : #"{"fields": {"name": "\#(name)", "phone": "\#(number)", "message": "Synthetic form: please call me back."}, "page_url": "https://example.test/contact", "submitted_at": "\#(at)", \#(attribution)}"#
        let entry = isCall ? call : form
        let now = Int64(Date().timeIntervalSince1970)
        let request = IngestRequest(
            sourceID: entry.id,
            signature: try IngestSignature.sign(Array(body.utf8), secret: entry.secret, timestamp: now),
            idempotencyKey: "demo-\(index)", body: Array(body.utf8))
        let result = isCall ? try await ingest.ingestCall(request) : try await ingest.ingestForm(request)
        guard isCall, index % 10 < 5, result.created else { return }
        let audio = SyntheticAudio.wave(seconds: 1 + Double(index % 3), frequency: 300 + Double(index))
        let chunks = AsyncStream<[UInt8]> { continuation in
            for start in stride(from: 0, to: audio.count, by: 16_384) {
                continuation.yield(Array(audio[start..<min(start + 16_384, audio.count)]))
            }
            continuation.finish()
        }
        _ = try await ingest.attachRecording(
            sourceID: entry.id, signature: try IngestSignature.sign(audio, secret: entry.secret, timestamp: now),
            leadID: result.leadID, contentType: "audio/wav", body: chunks)
    }
}
