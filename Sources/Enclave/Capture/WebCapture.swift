import Foundation
import Postgres
import Sealing

/// The website snippet's requests: page views (a visitor session and its pool number) and form
/// submissions. They carry a web property's public key, not a secret: the property is looked up,
/// the request's `Origin` checked against the property's allowlist, and the work is done under
/// the ingest credential of the property's own source, inside its practice.
public struct WebCapture: Sendable {
    public let ingest: IngestService

    public init(ingest: IngestService) {
        self.ingest = ingest
    }

    /// The campaign parameters a page URL may pass on; any other never leaves the browser.
    public static let campaignParameters: Set<String> = [
        "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "gbraid", "wbraid", "msclkid",
        "fbclid",
    ]

    /// A page view's answer: the visitor's session token (keep it in the first-party cookie),
    /// the pool number to show, and the practice's own number it replaces.
    public struct View: Sendable, Equatable {
        public let token: String
        public let number: String?
        public let mainNumber: String?
    }

    struct Property {
        let id: UUID
        let practice: UUID
        let origins: [String]
        let callSource: UUID?
        let formSource: UUID?
    }

    /// What a page view and a form cost from the snippet's per-minute budgets (120 per client
    /// address, 6,000 per property key, kept in PostgreSQL for every server process at once).
    public enum Cost: Int, Sendable {
        case view = 1
        case form = 10
    }

    /// Spends `cost` from this minute's budgets of the client's address and the property's key.
    ///
    /// - Throws: `.throttled`, with the start of the next minute to retry at, when either is spent.
    public func admit(publicKey: String, address: String?, cost: Cost) async throws {
        guard publicKey.utf8.count <= 80 else { throw AccessError(.notFound, "no such web property") }
        let admitted = try await ingest.pool.query(
            "select enclave_private.spend_capture_budget($1, $2::text::inet, $3::integer) as admitted",
            [publicKey, address, cost.rawValue]
        ).first?.decode(Bool.self, "admitted")
        guard admitted == true else {
            let now = Date().timeIntervalSince1970
            throw AccessError(
                .throttled, "too many requests from this site or address; retry in a minute",
                retryAfter: Date(timeIntervalSince1970: (now / 60).rounded(.down) * 60 + 60))
        }
    }

    /// The property a key names, if `origin` is on its list; 403 otherwise (404 for no such key).
    func property(_ publicKey: String, origin: String?) async throws -> Property {
        guard publicKey.utf8.count <= 80,
            let row = try await ingest.pool.query(
                """
                select property_id, practice_id, origins, call_source_id, form_source_id
                from enclave_private.capture_property($1)
                """, [publicKey]
            ).first
        else { throw AccessError(.notFound, "no such web property") }
        let origins = try row.decode([String].self, "origins")
        guard let origin, origins.contains(origin) else {
            throw AccessError(.forbidden, "this site may not use this key")
        }
        return Property(
            id: try row.decode(UUID.self, "property_id"), practice: try row.decode(UUID.self, "practice_id"),
            origins: origins, callSource: try row.decode(UUID?.self, "call_source_id"),
            formSource: try row.decode(UUID?.self, "form_source_id"))
    }

    /// A page view (after `admit`): the visitor's session (started on the first view with the landing path and
    /// the allowlisted parameters) and its pool number, held for a sliding 30 minutes. `client`
    /// is the visitor's address: one address holds a bounded number of the property's numbers
    /// (it is kept only as a hash with the property's id).
    public func view(
        publicKey: String, origin: String?, token: String?, landingPath: String?, parameters: [String: String],
        client: String? = nil
    ) async throws -> View {
        try await admit(publicKey: publicKey, address: client, cost: .view)
        let property = try await property(publicKey, origin: origin)
        guard let source = property.callSource ?? property.formSource else {
            throw AccessError(.notFound, "no such web property")
        }
        let credential = try await ingest.credential(source)
        let kept = parameters.filter { Self.campaignParameters.contains($0.key) }.mapValues { String($0.prefix(200)) }
        let path = landingPath.map { String(($0.split(separator: "?").first ?? "").split(separator: "#").first ?? "") }
            .map { String($0.prefix(500)) }
        let fresh = try Self.newToken()
        let given = token.flatMap(Self.validToken)
        return try await ingest.withCredential(credential) { transaction in
            let row = try await transaction.query(
                """
                select number, main_number, created
                from enclave_private.ingest_visitor_session($1, $2, $3, $4, $5, $6)
                """,
                [
                    property.id, SHA256.hash(Array((given ?? fresh).utf8)), SHA256.hash(Array(fresh.utf8)), path,
                    try JSONB(encoding: kept),
                    client.map { SHA256.hash(Array("\(property.id.uuidString.lowercased()) \($0)".utf8)) },
                ]
            ).first
            guard let row else { throw AccessError(.notFound, "no such web property") }
            return View(
                token: try row.decode(Bool.self, "created") ? fresh : (given ?? fresh),
                number: try row.decode(String?.self, "number"), mainNumber: try row.decode(String?.self, "main_number"))
        }
    }

    /// What a form submission says about itself besides its fields.
    public struct Submission: Sendable {
        public var token: String?
        public var fields: [String: String]
        /// The hidden field people leave empty.
        public var honeypot: String?
        /// Milliseconds between the page showing the form and its submission.
        public var elapsedMilliseconds: Int
        public var pageURL: String?

        public init(
            token: String?, fields: [String: String], honeypot: String?, elapsedMilliseconds: Int, pageURL: String?
        ) {
            self.token = token
            self.fields = fields
            self.honeypot = honeypot
            self.elapsedMilliseconds = elapsedMilliseconds
            self.pageURL = pageURL
        }
    }

    /// Forms faster than this are a bot's.
    public static let minimumFillMilliseconds = 2_000

    /// Stores a form submitted on the property's site (after `admit`) as a lead of its form source, its fields
    /// sealed, attributed to the visitor's session. A filled honeypot or a form filled faster than
    /// a person can stores nothing and returns nil (the answer does not tell the bot).
    public func submit(publicKey: String, origin: String?, _ submission: Submission, context: RequestContext)
        async throws
        -> IngestResult?
    {
        try await admit(publicKey: publicKey, address: context.client.address, cost: .form)
        let property = try await property(publicKey, origin: origin)
        guard let source = property.formSource else { throw AccessError(.notFound, "this site captures no forms") }
        guard (submission.honeypot ?? "").isEmpty, submission.elapsedMilliseconds >= Self.minimumFillMilliseconds else {
            return nil
        }
        guard !submission.fields.isEmpty, submission.fields.count <= 50,
            submission.fields.allSatisfy({ (1...100).contains($0.key.count) && $0.value.utf8.count <= 10_000 })
        else { throw AccessError(.invalidInput, "a form has 1 to 50 named fields of at most 10,000 bytes each") }
        let credential = try await ingest.credential(source)
        let given = submission.token.flatMap(Self.validToken)
        var lead = NewLead(kind: .form)
        lead.formFields = submission.fields
        lead.pageURL = submission.pageURL.map { String($0.prefix(2_000)) }
        lead.callerNumber = IngestService.phoneField(submission.fields)
        return try await ingest.store(
            lead, replayID: nil, context: context, credential,
            visitor: given.map { .form(property: property.id, tokenHash: SHA256.hash(Array($0.utf8))) })
    }

    /// 32 random bytes, base64url: the visitor's session token.
    static func newToken() throws -> String {
        Data(try SecureRandom.bytes(32)).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func validToken(_ text: String) -> String? {
        text.utf8.count == 43
            && text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            ? text : nil
    }
}
