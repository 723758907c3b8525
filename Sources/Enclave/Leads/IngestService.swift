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
        let credential = try await authenticate(request.sourceID, request.signature, body: request.body)
        let input = try LeadInputParser.call(request.body)
        return try await store(
            idempotencyKey: request.idempotencyKey, replayID: try IngestSignature(header: request.signature).replayID,
            context: request.context, credential
        ) { transaction, leadID, keySet in
            let key = try await keySet.activeDataKey()
            let seal = LeadSealer(key: key, practice: credential.practice, lead: leadID)
            let normalized = try PhoneNumber.normalize(input.callerNumber)
            return try await transaction.execute(
                """
                insert into enclave.leads (tenant_id, id, source_id, kind, occurred_at, source, medium, campaign, keyword,
                    landing_page, gclid, called_number, duration_seconds, disposition, caller_number, caller_name, transcript,
                    caller_index, dek_version, idempotency_key)
                select $1, $2, $3, 'call', $4, coalesce($5, s.default_source), coalesce($6, s.default_medium),
                       coalesce($7, s.default_campaign), $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19
                from enclave_private.ingest_defaults() s
                on conflict do nothing
                """,
                [
                    credential.practice, leadID, request.sourceID, input.startedAt, input.attribution.source,
                    input.attribution.medium, input.attribution.campaign, input.attribution.keyword,
                    input.attribution.landingPage, input.attribution.gclid, input.calledNumber, input.durationSeconds,
                    input.disposition, try seal(normalized, "caller_number"), try seal(input.callerName, "caller_name"),
                    try seal(input.transcript, "transcript"),
                    try await keySet.blindIndex().index(normalized: normalized),
                    Int32(key.version), request.idempotencyKey,
                ]
            ) == 1
        }
    }

    /// Stores a form submission.
    public func ingestForm(_ request: IngestRequest) async throws -> IngestResult {
        let credential = try await authenticate(request.sourceID, request.signature, body: request.body)
        let input = try LeadInputParser.form(request.body)
        return try await store(
            idempotencyKey: request.idempotencyKey, replayID: try IngestSignature(header: request.signature).replayID,
            context: request.context, credential
        ) { transaction, leadID, keySet in
            let key = try await keySet.activeDataKey()
            let seal = LeadSealer(key: key, practice: credential.practice, lead: leadID)
            let fields = try JSONEncoder().encode(input.fields)
            // A phone field, when it is one, gets the blind index too: "all leads from this caller".
            let phone = input.fields.first {
                ["phone", "phone_number", "telephone", "tel"].contains($0.key.lowercased())
            }
            .flatMap { try? PhoneNumber.normalize($0.value) }
            var index: [UInt8]?
            if let phone { index = try await keySet.blindIndex().index(normalized: phone) }
            return try await transaction.execute(
                """
                insert into enclave.leads (tenant_id, id, source_id, kind, occurred_at, source, medium, campaign, keyword,
                    landing_page, gclid, form_fields, page_url, caller_number, caller_index, dek_version, idempotency_key)
                select $1, $2, $3, 'form', $4, coalesce($5, s.default_source), coalesce($6, s.default_medium),
                       coalesce($7, s.default_campaign), $8, $9, $10, $11, $12, $13, $14, $15, $16
                from enclave_private.ingest_defaults() s
                on conflict do nothing
                """,
                [
                    credential.practice, leadID, request.sourceID, input.submittedAt, input.attribution.source,
                    input.attribution.medium, input.attribution.campaign, input.attribution.keyword,
                    input.attribution.landingPage, input.attribution.gclid, try seal(Array(fields), "form_fields"),
                    try seal(input.pageURL.map { Array($0.utf8) }, "page_url"),
                    try seal(phone.map { Array($0.utf8) }, "caller_number"),
                    index, Int32(key.version), request.idempotencyKey,
                ]
            ) == 1
        }
    }

    // MARK: - Internals

    struct Credential: Sendable {
        let source: UUID
        let practice: UUID
        let secret: String
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

    /// The source's practice and secret (unwrapped through the key cache).
    func credential(_ source: UUID) async throws -> Credential {
        let row = try await pool.query(
            "select practice_id, wrapped_secret, disabled from enclave_private.ingest_source($1)", [source]
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
        return Credential(source: source, practice: try row.decode(UUID.self, "practice_id"), secret: secret)
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

    /// Replay check, idempotency, insert, audit: one transaction.
    ///
    /// The inserts say `on conflict do nothing` without naming the idempotency constraint: naming
    /// an arbiter makes PostgreSQL check the new row against the SELECT policies too, and an
    /// ingest credential may read nothing. The id is random, so the only conflict is the key.
    ///
    /// `replayID` marks a signed request as seen (a second one without an idempotency key is a
    /// replay); a provider whose signature has no timestamp passes nil and an idempotency key.
    func store(
        idempotencyKey: String?, replayID: [UInt8]?, context: RequestContext,
        _ credential: Credential,
        insert: (Transaction, UUID, TenantKeySet) async throws -> Bool
    ) async throws -> IngestResult {
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
            let leadID = UUID()
            let keySet = try await keys.ingestKeys(credential.practice, in: transaction)
            guard try await insert(transaction, leadID, keySet) else {
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

/// Seals a new lead's PHI fields with the practice's active data key, each bound to its
/// practice, table, column and row (one sealer per lead; every ingest path uses it).
struct LeadSealer {
    let key: DataKey
    let practice: UUID
    let lead: UUID

    func callAsFunction(_ value: [UInt8]?, _ column: String) throws -> [UInt8]? {
        try value.map {
            try FieldCipher.seal(
                $0, with: key, for: FieldContext(tenantID: practice, table: "leads", column: column, rowID: lead))
        }
    }

    func callAsFunction(_ value: String?, _ column: String) throws -> [UInt8]? {
        try callAsFunction(value.map { Array($0.utf8) }, column)
    }
}
