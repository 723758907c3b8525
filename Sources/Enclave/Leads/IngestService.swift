import Foundation
import Postgres
import Sealing

/// A signed ingest request from a provider.
public struct IngestRequest: Sendable {
    public var sourceID: UUID
    /// The `Enclave-Signature` header.
    public var signature: String
    /// Makes retries safe: the same key returns the same lead and stores nothing new.
    public var idempotencyKey: String?
    public var body: [UInt8]
    public var context: RequestContext

    public init(
        sourceID: UUID, signature: String, idempotencyKey: String? = nil, body: [UInt8],
        context: RequestContext = RequestContext()
    ) {
        self.sourceID = sourceID
        self.signature = signature
        self.idempotencyKey = idempotencyKey
        self.body = body
        self.context = context
    }
}

/// The lead an ingest request created, or found for its idempotency key.
public struct IngestResult: Sendable, Equatable {
    public let leadID: UUID
    public let practiceID: UUID
    /// False when an earlier request with the same idempotency key had already stored it.
    public let created: Bool
}

/// Ingest of calls, forms and recordings from providers. Each request is authenticated by its
/// signature before anything is parsed or stored, runs under the source's ingest credential, and
/// seals every PHI field with the practice's active data key, bound to its row and column. The
/// credential inserts its own source's leads and recordings and reads no table: idempotency,
/// replay markers, keys and defaults come through `sql/functions/ingest.sql`.
public struct IngestService: Sendable {
    public let pool: ConnectionPool
    public let keys: TenantKeyStore
    /// The clock, for signature freshness.
    public let now: @Sendable () -> Date

    public init(pool: ConnectionPool, keys: TenantKeyStore, now: @escaping @Sendable () -> Date = Date.init) {
        self.pool = pool
        self.keys = keys
        self.now = now
    }

    /// Stores a call.
    public func ingestCall(_ request: IngestRequest) async throws -> IngestResult {
        try await ingestSigned(request) { body in
            let input = try LeadInputParser.call(body)
            var lead = NewLead(kind: .call)
            lead.occurredAt = input.startedAt
            lead.attribution = input.attribution
            lead.calledNumber = input.calledNumber
            lead.durationSeconds = input.durationSeconds.map(Int32.init)
            lead.disposition = input.disposition
            lead.callerNumber = try PhoneNumber.normalize(input.callerNumber)
            lead.callerName = input.callerName
            lead.transcript = input.transcript
            return lead
        }
    }

    /// Stores a form submission.
    public func ingestForm(_ request: IngestRequest) async throws -> IngestResult {
        try await ingestSigned(request) { body in
            let input = try LeadInputParser.form(body)
            var lead = NewLead(kind: .form)
            lead.occurredAt = input.submittedAt
            lead.attribution = input.attribution
            lead.formFields = input.fields
            lead.pageURL = input.pageURL
            lead.callerNumber = Self.phoneField(input.fields)
            return lead
        }
    }

    /// A signed JSON request: its signature checked before `describe` parses the body into the
    /// lead, which is stored under the request's idempotency key.
    func ingestSigned(_ request: IngestRequest, _ describe: ([UInt8]) throws -> NewLead) async throws
        -> IngestResult
    {
        let credential = try await authenticate(request.sourceID, request.signature, body: request.body)
        var lead = try describe(request.body)
        lead.idempotencyKey = request.idempotencyKey
        return try await store(
            lead, replayID: try IngestSignature(header: request.signature).replayID, context: request.context,
            credential)
    }

    /// A form's phone field, when it has one that is a phone number: the lead gets the caller's
    /// blind index too ("all leads from this caller").
    static func phoneField(_ fields: [String: String]) -> String? {
        fields.first { ["phone", "phone_number", "telephone", "tel"].contains($0.key.lowercased()) }
            .flatMap { try? PhoneNumber.normalize($0.value) }
    }

    // MARK: - Internals

    /// A source and its credential, as `ingest_source` gives them in one read.
    struct Credential: Sendable {
        let source: UUID
        let practice: UUID
        let secret: String
        /// `enclave` (signed JSON) or a provider's name (`twilio`).
        let provider: String
        /// A provider line's settings: its account, the number it forwards to, and whether the
        /// caller hears that the call is recorded.
        let providerAccount: String?
        let forwardTo: String?
        let announceRecording: Bool
    }

    /// Checks the signature against the source's secret; nothing is parsed or stored before.
    func authenticate(_ source: UUID, _ header: String, body: [UInt8]) async throws -> Credential {
        let signature = try IngestSignature(header: header)
        try signature.checkFreshness(now: now())
        let credential = try await credential(source)
        let expected = try Array(credential.secret.utf8).withUnsafeBytes {
            try HMAC.authenticationCode(.sha256, key: $0, message: Array("\(signature.timestamp).".utf8) + body)
        }
        guard HMAC.constantTimeEqual(expected, signature.mac) else {
            throw AccessError(.unauthenticated, "the signature does not match this source's secret")
        }
        return credential
    }

    /// The source's practice, secret (unwrapped through the key cache) and provider settings.
    func credential(_ source: UUID) async throws -> Credential {
        let row = try await pool.query(
            """
            select practice_id, wrapped_secret, disabled, provider, provider_account, forward_to, announce_recording
            from enclave_private.ingest_source($1)
            """, [source]
        ).first
        guard let row, try !row.decode(Bool.self, "disabled") else {
            throw AccessError(.unauthenticated, "the signature does not match this source's secret")
        }
        let wrapped = try row.decode([UInt8].self, "wrapped_secret")
        // Cached by a digest of the wrapped bytes: a rotated secret has new wrapped bytes, so the
        // old secret is never served from the cache after rotation.
        let digest = SHA256.hash(wrapped)
        let version = digest.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let material = try await keys.keyring.material(
            for: Keyring.KeyID(tenantID: source, purpose: "ingest", version: version)
        ) {
            try await keys.provider.unwrap(wrapped, context: TrackingSources.secretContext(source))
        }
        let secret = material.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
        return Credential(
            source: source, practice: try row.decode(UUID.self, "practice_id"), secret: secret,
            provider: try row.decode(String.self, "provider"),
            providerAccount: try row.decode(String?.self, "provider_account"),
            forwardTo: try row.decode(String?.self, "forward_to"),
            announceRecording: try row.decode(Bool.self, "announce_recording"))
    }

    /// Runs `body` in a transaction bound to the ingest credential.
    func withCredential<T: Sendable>(_ credential: Credential, _ body: (Transaction) async throws -> T) async throws
        -> T
    {
        try await mappingAccessErrors {
            try await pool.withTransaction { transaction in
                try await transaction.query(
                    """
                    select set_config('enclave.ingest_source', $1, true), set_config('enclave.ingest_secret', $2, true),
                           set_config('enclave.tenant_id', $3, true)
                    """,
                    [
                        credential.source.uuidString.lowercased(), credential.secret,
                        credential.practice.uuidString.lowercased(),
                    ])
                return try await body(transaction)
            }
        }
    }

    /// Replay check, idempotency, insert (`LeadWriter`), audit, outbox: one transaction.
    ///
    /// `replayID` marks a signed request as seen (a second one without an idempotency key is a
    /// replay); a provider whose signature has no timestamp passes nil and an idempotency key.
    /// `complete` finishes the lead inside the transaction, before it is written (a call to a
    /// pool number takes the attribution of the visitor it was shown to).
    func store(
        _ lead: NewLead, replayID: [UInt8]?, context: RequestContext, _ credential: Credential,
        complete: (Transaction, inout NewLead) async throws -> Void = { _, _ in }
    ) async throws -> IngestResult {
        let idempotencyKey = lead.idempotencyKey
        if let key = idempotencyKey {
            guard (1...200).contains(key.utf8.count), key.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw AccessError(.invalidInput, "the idempotency key has 1 to 200 printable ASCII characters")
            }
        }
        return try await withCredential(credential) { transaction in
            let existing = { () async throws -> UUID? in
                guard let key = idempotencyKey else { return nil }
                return try await transaction.query(
                    "select enclave_private.ingest_existing_lead($1) as id", [key]
                ).first?.decode(UUID?.self, "id")
            }
            if let lead = try await existing() {
                return IngestResult(leadID: lead, practiceID: credential.practice, created: false)
            }
            if let replayID, try await !markSignature(transaction, replayID) {
                // The same signed request again. With an idempotency key it is a retry: once the
                // request that got here first has committed (the marker insert waited for it),
                // its lead is the answer. Without one it is a replay.
                if let lead = try await existing() {
                    return IngestResult(leadID: lead, practiceID: credential.practice, created: false)
                }
                throw AccessError(.unauthenticated, "this signed request was already received (replay)")
            }
            var lead = lead
            try await complete(transaction, &lead)
            let leadID = lead.id
            let writer = LeadWriter(
                practice: credential.practice, source: credential.source,
                keys: try await keys.ingestKeys(credential.practice, in: transaction))
            guard try await writer.insert([lead], in: transaction) == 1 else {
                // A concurrent retry with the same key won the race: return its lead.
                guard let lead = try await existing() else {
                    throw AccessError(.conflict, "the lead could not be stored")
                }
                return IngestResult(leadID: lead, practiceID: credential.practice, created: false)
            }
            try await transaction.audit(
                AuditEvent(
                    tenant: credential.practice, action: .leadCreated, objectType: "lead",
                    objectID: leadID.uuidString.lowercased()),
                context: context)
            // The outbox, in this transaction: a crash loses neither the lead nor its notices.
            try await transaction.query("select enclave_private.enqueue_new_lead($1)", [leadID])
            return IngestResult(leadID: leadID, practiceID: credential.practice, created: true)
        }
    }

    /// Refuses a signature seen before (a replayed request).
    func checkReplay(_ transaction: Transaction, _ signature: IngestSignature) async throws {
        guard try await markSignature(transaction, signature.replayID) else {
            throw AccessError(.unauthenticated, "this signed request was already received (replay)")
        }
    }

    /// Records a signature as used; false if it was used before. Prunes markers past the window.
    func markSignature(_ transaction: Transaction, _ replayID: [UInt8]) async throws -> Bool {
        try await transaction.query(
            "select enclave_private.ingest_mark_signature($1) as fresh", [replayID]
        ).first?.decode(Bool.self, "fresh") ?? false
    }
}
