import Foundation
import Postgres
import Sealing

/// Reading and redacting leads. Every read runs under the database gate and records `phi.read`
/// or `recording.played` in the same transaction: if the event cannot be written, nothing is
/// returned.
public struct LeadService: Sendable {
    public let access: PracticeAccess
    public let keys: TenantKeyStore
    /// Recordings being played, per user.
    public let streams: RecordingStreams

    public init(access: PracticeAccess, keys: TenantKeyStore, streams: RecordingStreams = RecordingStreams()) {
        self.access = access
        self.keys = keys
        self.streams = streams
    }

    /// The columns `decrypt` reads. The full transcript only for a caller that reaches the
    /// practice for `transcripts.full` (its members, agency staff whose agreement grants it, the
    /// maintenance role); read_leads applies the same rule.
    static let columns = """
        id, source_id, kind, occurred_at, source, medium, campaign, keyword, landing_page, gclid, called_number,
        duration_seconds, disposition, caller_number, caller_name,
        case when (select enclave_private.reachable_tenant('transcripts.full')) = tenant_id then transcript end
            as transcript,
        form_fields, page_url, recording_bytes, recording_content_type, redacted_at, qualification, value_cents,
        transcript_redacted, insights, transcript_status
        """

    /// A page of the practice's leads, newest first, with filters.
    public func list(
        _ token: SessionToken, practice: UUID, filter: LeadFilter = LeadFilter(),
        context: RequestContext = RequestContext()
    ) async throws -> LeadPage {
        guard (1...100).contains(filter.limit) else { throw AccessError(.invalidInput, "limit must be 1 to 100") }
        if let kind = filter.kind, !["call", "form"].contains(kind) {
            throw AccessError(.invalidInput, "kind must be call or form")
        }
        var after: (Date, UUID)?
        if let cursor = filter.cursor {
            guard let decoded = Self.decodeCursor(cursor) else {
                throw AccessError(.invalidInput, "the cursor is not valid")
            }
            after = decoded
        }
        let read = try await read(
            token, practice: practice, lead: nil, filter: filter, after: after, context: context)
        return LeadPage(
            leads: read.leads,
            nextCursor: read.more ? read.leads.last.map { Self.encodeCursor($0.occurredAt, $0.id) } : nil)
    }

    /// One lead.
    public func get(_ token: SessionToken, practice: UUID, lead: UUID, context: RequestContext = RequestContext())
        async throws -> Lead
    {
        guard let found = try await read(token, practice: practice, lead: lead, context: context).leads.first else {
            throw AccessError(.notFound, "no such lead")
        }
        return found
    }

    /// Leads of the practice in one round trip: `enclave_private.read_leads` binds the session,
    /// checks the reach, reads, and records the read, in one statement and so one transaction;
    /// the keys to open them come in the same answer.
    private func read(
        _ token: SessionToken, practice: UUID, lead: UUID?, filter: LeadFilter = LeadFilter(),
        after: (Date, UUID)? = nil, context: RequestContext
    ) async throws -> (leads: [Lead], more: Bool) {
        let tokens = try await searchTokens(token, practice: practice, filter: filter, context: context)
        let rows = try await access.recordingRefusals(
            token, practice: practice, scope: .leadsRead, context: context
        ) {
            try await access.pool.query(
                """
                select * from enclave_private.read_leads(
                    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::text::inet, $15,
                    (select array_agg(decode(t, 'hex')) from unnest($16::text[]) t))
                """,
                [
                    token.value, practice, lead, filter.since, filter.until, filter.kind, filter.sourceID,
                    filter.campaign, filter.source, after?.0, after?.1, Int32(filter.limit), context.requestID,
                    context.client.address, context.client.userAgent, tokens?.map(\.hex),
                ])
        }
        var leads: [PostgresRow] = []
        var keyRows: [PostgresRow] = []
        var more = false
        for row in rows {
            switch try row.decode(String.self, "row_kind") {
            case "lead": leads.append(row)
            case "key": keyRows.append(row)
            default: more = true
            }
        }
        guard !leads.isEmpty else { return ([], false) }
        let keySet = try keys.keySet(practice, keyRows, prefix: "key_")
        return (try await decrypt(leads, practice: practice, keySet), more)
    }

    /// The blind-index tokens of a transcript search and a tag filter (nil for neither): the
    /// practice's index key is needed first, so a search costs a round trip more than a list.
    private func searchTokens(
        _ token: SessionToken, practice: UUID, filter: LeadFilter, context: RequestContext
    ) async throws -> [[UInt8]]? {
        let words = filter.mentions.map { TranscriptTokens.words(of: $0) } ?? []
        if let mentions = filter.mentions {
            guard mentions.utf8.count <= 200, !words.isEmpty, words.count <= 8 else {
                throw AccessError(
                    .invalidInput, "mentions must hold one to eight words of three letters or more (not the commonest)")
            }
        }
        if let tag = filter.tag, tag.utf8.count > 40 || tag.isEmpty {
            throw AccessError(.invalidInput, "tag must be a keyword set's name")
        }
        guard filter.mentions != nil || filter.tag != nil else { return nil }
        return try await access.withPractice(token, practice: practice, scope: .leadsRead, context: context) {
            transaction in
            let index = try await keys.keys(practice, in: transaction).blindIndex()
            return try words.map { try TranscriptTokens.word($0, index) }
                + (filter.tag.map { [try TranscriptTokens.tag($0, index)] } ?? [])
        }
    }

    /// Every lead from one caller number, found by its blind index without decrypting others.
    public func find(
        _ token: SessionToken, practice: UUID, callerNumber: String, context: RequestContext = RequestContext()
    ) async throws -> [Lead] {
        let normalized: String
        do {
            normalized = try PhoneNumber.normalize(callerNumber)
        } catch {
            throw AccessError(.invalidInput, "not a phone number")
        }
        return try await access.withPractice(token, practice: practice, scope: .leadsRead, context: context) {
            transaction in
            let index = try await keys.keys(practice, in: transaction).blindIndex().index(normalized: normalized)
            let rows = try await transaction.query(
                """
                select \(Self.columns) from enclave.leads where tenant_id = $1 and caller_index = $2
                order by occurred_at desc, id desc limit 200
                """,
                [practice, index])
            let leads = try await decrypt(Array(rows), practice: practice, transaction)
            try await audit(leads, practice: practice, transaction, context, reason: "find by caller")
            return leads
        }
    }

    /// Opens a call's recording for playing: the gate is asked, the user's stream slot taken and
    /// `recording.played` committed before a byte is sent. `range` is given the recording's size
    /// and returns the bytes wanted (nil: all of them); it may throw to refuse.
    ///
    /// - Throws: `.notFound` for a lead without a recording, `.invalidInput` for a range outside
    ///   it, `.throttled` when the user is playing `streams.perUser` recordings already.
    public func openRecording(
        _ token: SessionToken,
        practice: UUID,
        lead: UUID,
        range: (Int64) throws -> ClosedRange<Int64>? = { _ in nil },
        context: RequestContext = RequestContext()
    ) async throws -> RecordingPlayback {
        try await access.withPractice(token, practice: practice, scope: .recordingsListen, context: context) {
            transaction in
            let rows = try await transaction.query(
                """
                select recording_header, recording_bytes, recording_chunks, recording_content_type,
                       (select user_id from enclave_private.current_session()) as user_id
                from enclave.leads where tenant_id = $1 and id = $2
                """,
                [practice, lead])
            guard let row = rows.first, let header = try row.decode([UInt8]?.self, "recording_header"),
                let total = try row.decode(Int64?.self, "recording_bytes"),
                let chunks = try row.decode(Int32?.self, "recording_chunks"),
                let contentType = try row.decode(String?.self, "recording_content_type"),
                let user = try row.decode(UUID?.self, "user_id")
            else { throw AccessError(.notFound, "this lead has no recording") }
            let asked = try range(total)
            let wanted = asked ?? 0...max(total - 1, 0)
            guard total == 0 || (wanted.lowerBound >= 0 && wanted.upperBound < total) else {
                throw AccessError(.invalidInput, "the range is outside the recording")
            }
            let slot = try streams.acquire(for: user)
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .recordingPlayed, objectType: "lead",
                    objectID: lead.uuidString.lowercased(),
                    details: asked.map { ["range": .string("\($0.lowerBound)-\($0.upperBound)")] } ?? [:]),
                context: context)
            let key = try await keys.keys(practice, in: transaction).dataKey(
                version: StreamCipher.keyVersion(ofHeader: header))
            let opener = try StreamOpener(
                header: header, key: key,
                context: FieldContext(tenantID: practice, table: "recordings", column: "audio", rowID: lead))
            return RecordingPlayback(
                bytes: total, contentType: contentType, range: asked, wanted: wanted, chunks: chunks,
                opener: opener,
                reader: .init(access: access, token: token, practice: practice, lead: lead, context: context),
                slot: slot)
        }
    }

    /// Streams a call's recording (or a byte range of it) to `sink`: `openRecording`, then
    /// `RecordingPlayback.stream`.
    ///
    /// - Returns: the recording's total size and content type.
    @discardableResult
    public func streamRecording(
        _ token: SessionToken,
        practice: UUID,
        lead: UUID,
        range: ClosedRange<Int64>? = nil,
        context: RequestContext = RequestContext(),
        sink: ([UInt8]) async throws -> Void
    ) async throws -> (bytes: Int64, contentType: String) {
        let playback = try await openRecording(
            token, practice: practice, lead: lead, range: { _ in range }, context: context)
        try await playback.stream(sink)
        return (playback.bytes, playback.contentType)
    }

    /// A practice owner replaces a lead's PHI with nothing; attribution stays; the act is audited.
    public func redact(
        _ token: SessionToken, practice: UUID, lead: UUID, fields: Set<RedactableField>,
        context: RequestContext = RequestContext()
    ) async throws {
        guard !fields.isEmpty else { throw AccessError(.invalidInput, "name at least one field to redact") }
        let redacted = try await access.withPractice(token, practice: practice, scope: .leadsRead, context: context) {
            transaction in
            // Through the definer function, which checks the owner role and audits in this transaction.
            try await transaction.query(
                "select enclave_private.redact_lead($1, $2, $3, $4::text::inet, $5) as redacted",
                [
                    lead, fields.map(\.rawValue).sorted(), context.requestID, context.client.address,
                    context.client.userAgent,
                ]
            ).first?.decode(Bool.self, "redacted") ?? false
        }
        guard redacted else { throw AccessError(.notFound, "no such lead") }
    }

    // MARK: - Internals

    func decrypt(_ rows: [PostgresRow], practice: UUID, _ transaction: Transaction) async throws -> [Lead] {
        guard !rows.isEmpty else { return [] }
        return try await decrypt(rows, practice: practice, try await keys.keys(practice, in: transaction))
    }

    func decrypt(_ rows: [PostgresRow], practice: UUID, _ keySet: TenantKeySet) async throws -> [Lead] {
        try await rows.asyncMap { row in
            let id = try row.decode(UUID.self, "id")
            func open(_ column: String) async throws -> [UInt8]? {
                guard let sealed = try row.decode([UInt8]?.self, column) else { return nil }
                return try await keySet.open(
                    sealed, for: FieldContext(tenantID: practice, table: "leads", column: column, rowID: id))
            }
            func text(_ column: String) async throws -> String? {
                try await open(column).map { String(decoding: $0, as: UTF8.self) }
            }
            return Lead(
                id: id, practiceID: practice, sourceID: try row.decode(UUID.self, "source_id"),
                kind: try row.decode(String.self, "kind"), occurredAt: try row.decode(Date.self, "occurred_at"),
                attribution: Attribution(
                    source: try row.decode(String?.self, "source"), medium: try row.decode(String?.self, "medium"),
                    campaign: try row.decode(String?.self, "campaign"),
                    keyword: try row.decode(String?.self, "keyword"),
                    landingPage: try row.decode(String?.self, "landing_page"),
                    gclid: try row.decode(String?.self, "gclid")),
                calledNumber: try row.decode(String?.self, "called_number"),
                durationSeconds: try row.decode(Int32?.self, "duration_seconds").map(Int.init),
                disposition: try row.decode(String?.self, "disposition"),
                callerNumber: try await text("caller_number"), callerName: try await text("caller_name"),
                transcript: try await text("transcript"),
                formFields: try await open("form_fields").flatMap {
                    try? JSONDecoder().decode([String: String].self, from: Data($0))
                },
                pageURL: try await text("page_url"),
                recordingBytes: try row.decode(Int64?.self, "recording_bytes"),
                recordingContentType: try row.decode(String?.self, "recording_content_type"),
                redactedAt: try row.decode(Date?.self, "redacted_at"),
                qualification: try row.decode(String?.self, "qualification"),
                valueCents: try row.decode(Int64?.self, "value_cents"),
                redactedTranscript: try await text("transcript_redacted"),
                insights: try await open("insights").flatMap {
                    try? JSONDecoder().decode(TranscriptInsights.self, from: Data($0))
                },
                transcriptStatus: try row.decode(String?.self, "transcript_status"))
        }
    }

    /// One `phi.read` event naming every lead returned (none for an empty result).
    private func audit(
        _ leads: [Lead], practice: UUID, _ transaction: Transaction, _ context: RequestContext, reason: String
    ) async throws {
        guard !leads.isEmpty else { return }
        try await transaction.audit(
            AuditEvent(
                tenant: practice, action: .phiRead, objectType: "lead",
                objectID: leads.count == 1 ? leads[0].id.uuidString.lowercased() : nil, reason: reason,
                details: ["leads": .ids(leads.map(\.id))]),
            context: context)
    }

    static func encodeCursor(_ date: Date, _ id: UUID) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        return Data("\(micros):\(id.uuidString.lowercased())".utf8).base64EncodedString()
    }

    static func decodeCursor(_ cursor: String) -> (Date, UUID)? {
        guard cursor.utf8.count <= 200, let data = Data(base64Encoded: cursor),
            let text = String(data: data, encoding: .utf8)
        else {
            return nil
        }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
            return nil
        }
        return (Date(timeIntervalSince1970: Double(micros) / 1_000_000), id)
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
