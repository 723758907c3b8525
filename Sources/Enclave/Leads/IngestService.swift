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
    /// Sources' credentials and active keys as last read (checked by every statement that uses them).
    let credentials = IngestCredentials()

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
    /// The secret as last read is tried first; on a mismatch the source is read again, so a
    /// rotated secret is honoured at once.
    func authenticate(_ source: UUID, _ header: String, body: [UInt8]) async throws -> Credential {
        let signature = try IngestSignature(header: header)
        try signature.checkFreshness(now: now())
        func matches(_ credential: Credential) throws -> Bool {
            let expected = try Array(credential.secret.utf8).withUnsafeBytes {
                try HMAC.authenticationCode(.sha256, key: $0, message: Array("\(signature.timestamp).".utf8) + body)
            }
            return HMAC.constantTimeEqual(expected, signature.mac)
        }
        if let cached = credentials.credential(source), try matches(cached) { return cached }
        let credential = try await freshCredential(source)
        guard try matches(credential) else {
            throw AccessError(.unauthenticated, "the signature does not match this source's secret")
        }
        return credential
    }

    /// The source's credential as last read, else read now.
    func credential(_ source: UUID) async throws -> Credential {
        if let cached = credentials.credential(source) { return cached }
        return try await freshCredential(source)
    }

    /// The source's practice, secret (unwrapped through the key cache) and provider settings,
    /// read now.
    func freshCredential(_ source: UUID) async throws -> Credential {
        let row = try await pool.query(
            """
            select practice_id, wrapped_secret, disabled, provider, provider_account, forward_to, announce_recording
            from enclave_private.ingest_source($1)
            """, [source]
        ).first
        guard let row, try !row.decode(Bool.self, "disabled") else {
            credentials.forget(source)
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
        let credential = Credential(
            source: source, practice: try row.decode(UUID.self, "practice_id"), secret: secret,
            provider: try row.decode(String.self, "provider"),
            providerAccount: try row.decode(String?.self, "provider_account"),
            forwardTo: try row.decode(String?.self, "forward_to"),
            announceRecording: try row.decode(Bool.self, "announce_recording"))
        credentials.remember(credential)
        return credential
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

    /// Where a web lead's visitor is found, for its attribution: the pool number a call was
    /// placed to, or the property and session token hash a form was posted with.
    enum Visitor {
        case number(String)
        case form(property: UUID, tokenHash: [UInt8])
    }

    /// Replay check, idempotency, insert, audit, outbox: one call of `enclave_private.ingest_lead`,
    /// one round trip, one transaction, with the lead sealed (`LeadWriter`) before it.
    ///
    /// `replayID` marks a signed request as seen (a second one without an idempotency key is a
    /// replay); a provider whose signature has no timestamp passes nil and an idempotency key.
    /// A lead with a `visitor` takes the attribution of the website visitor it belongs to.
    ///
    /// The credential and keys are those last read. When the database says the credential no
    /// longer holds, the source is read again and the call repeated if its secret, the one the
    /// request was checked with, is unchanged; when the data key rotated, the lead is sealed
    /// again with the new one.
    func store(
        _ lead: NewLead, replayID: [UInt8]?, context: RequestContext, _ credential: Credential,
        visitor: Visitor? = nil
    ) async throws -> IngestResult {
        if let key = lead.idempotencyKey {
            guard (1...200).contains(key.utf8.count), key.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw AccessError(.invalidInput, "the idempotency key has 1 to 200 printable ASCII characters")
            }
        }
        let stale: Set<String> = [
            DatabaseRefusal.ingestCredentialInvalid.rawValue, DatabaseRefusal.ingestKeyChanged.rawValue,
        ]
        var credential = credential
        var retried = false
        return try await mappingAccessErrors {
            while true {
                do {
                    let keys = try await activeKeys(credential)
                    return try await ingestLead(
                        lead, replayID: replayID, visitor: visitor, context: context, credential, keys)
                } catch let error as PostgresError where !retried && stale.contains(error.message) {
                    retried = true
                    // The credential or the key changed since it was read: read both again.
                    credentials.forget(credential.source)
                    let fresh = try await freshCredential(credential.source)
                    guard fresh.secret == credential.secret else { throw error }
                    credential = fresh
                }
            }
        }
    }

    private func ingestLead(
        _ lead: NewLead, replayID: [UInt8]?, visitor: Visitor?, context: RequestContext, _ credential: Credential,
        _ keySet: TenantKeySet
    ) async throws -> IngestResult {
        let writer = LeadWriter(practice: credential.practice, source: credential.source, keys: keySet)
        let sealed = try await writer.seal([lead])
        var number: String?
        var property: UUID?
        var tokenHash: [UInt8]?
        switch visitor {
        case .number(let called): number = called
        case .form(let id, let hash): (property, tokenHash) = (id, hash)
        case nil: break
        }
        let row = try await pool.query(
            """
            select lead_id, created from enclave_private.ingest_lead(
                $1, $2, $3, ($4::jsonb) -> 0, $5, $6, $7, $8, $9, $10, $11, $12::text::inet, $13)
            """,
            [
                credential.source, credential.secret, credential.practice, sealed.rows, Int32(sealed.version),
                lead.idempotencyKey, replayID, number, property, tokenHash, context.requestID,
                context.client.address, context.client.userAgent,
            ]
        ).first
        guard let row else { throw AccessError(.conflict, "the lead could not be stored") }
        return IngestResult(
            leadID: try row.decode(UUID.self, "lead_id"), practiceID: credential.practice,
            created: try row.decode(Bool.self, "created"))
    }

    /// The practice's active keys as last read for this source, else read now.
    private func activeKeys(_ credential: Credential) async throws -> TenantKeySet {
        if let cached = credentials.keys(credential.source) { return cached }
        let keySet = try await withCredential(credential) { transaction in
            try await keys.ingestKeys(credential.practice, in: transaction)
        }
        credentials.remember(keySet, for: credential.source)
        return keySet
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
