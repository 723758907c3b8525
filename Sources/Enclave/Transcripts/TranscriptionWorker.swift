import Foundation
import Postgres
import Sealing
import Speech

/// The transcription worker: for each call with a recording (or a provider's transcript) and no
/// transcript of ours yet, as the maintenance role, one practice at a time, it decrypts the
/// recording in memory, transcribes it on this machine, and stores, sealed under the practice's
/// key, the transcript, its redacted form and its insights (tags, score, suggestion), with the
/// redacted form's search tokens, and records `transcript.created`.
///
/// Nothing leaves the process: the transcriber runs in it (or in a sidecar it starts), and no
/// network connection is opened. The recording is read in one short transaction and the result
/// written in another; nothing is held open while the engine works (minutes for a long call). A
/// crash in between loses the work, not data: the call is still due.
public struct TranscriptionWorker: Sendable {
    /// What one pass did.
    public struct Summary: Sendable, Equatable {
        public var transcribed = 0
        /// A provider's transcript given its redacted form and tags (no speech recognition).
        public var redacted = 0
        /// Recordings in a format the worker does not decode (recorded, not retried).
        public var unreadable = 0
        /// Seconds of audio transcribed.
        public var seconds = 0.0

        public init() {}
    }

    public let maintenance: MaintenanceContext
    public let keys: TenantKeyStore
    public let transcriber: any Transcriber

    public init(maintenance: MaintenanceContext, keys: TenantKeyStore, transcriber: any Transcriber) {
        self.maintenance = maintenance
        self.keys = keys
        self.transcriber = transcriber
    }

    /// Works up to `limit` due calls, oldest first.
    public func transcribeDue(limit: Int = 10) async throws -> Summary {
        let due = try await maintenance.pool.query(
            "select tenant_id, id from enclave_private.due_transcriptions($1)", [Int32(limit)])
        var summary = Summary()
        for row in due {
            try await work(
                tenant: try row.decode(UUID.self, "tenant_id"), lead: try row.decode(UUID.self, "id"), &summary)
        }
        return summary
    }

    /// What the worker reads of a call, decrypted.
    struct Call {
        var transcript: String?
        var audio: [UInt8]?
        var knownNames: [String]
        var sets: [KeywordSet]
        var durationSeconds: Int?
        var disposition: String?
    }

    private func work(tenant: UUID, lead: UUID, _ summary: inout Summary) async throws {
        guard let call = try await read(tenant: tenant, lead: lead) else { return }
        var transcript = call.transcript
        var engine = "provider"
        var seconds = 0.0
        if transcript == nil, let audio = call.audio {
            do {
                let pcm = try PCMAudio(wav: audio)
                transcript = try await transcriber.transcript(of: pcm)
                engine = transcriber.engine
                seconds = pcm.duration
            } catch let error as SpeechError where error.code == .unsupportedAudio || error.code == .engineFailed {
                // Not tried again: the same audio would fail the same way, every pass. (An engine
                // that cannot start, .engineUnavailable, fails the pass instead; nothing is marked.)
                try await store(tenant: tenant, lead: lead, nil, engine: nil, call)
                summary.unreadable += 1
                return
            }
        }
        guard let transcript else { return }
        if try await store(
            tenant: tenant, lead: lead, transcript, engine: engine, call, fromRecording: engine != "provider")
        {
            if engine == "provider" { summary.redacted += 1 } else { summary.transcribed += 1 }
            summary.seconds += seconds
        }
    }

    /// The call's transcript or recording, the names known for it and the practice's keyword
    /// sets; nil when it is not due any more.
    private func read(tenant: UUID, lead: UUID) async throws -> Call? {
        try await maintenance.withTenant(tenant) { transaction in
            guard
                let row = try await transaction.query(
                    """
                    select caller_name, form_fields, transcript, recording_header, recording_chunks, recording_bytes,
                           duration_seconds, disposition
                    from enclave.leads where tenant_id = $1 and id = $2 and transcribed_at is null
                    """,
                    [tenant, lead]
                ).first
            else { return nil }
            let keySet = try await keys.keys(tenant, in: transaction)
            func open(_ column: String) async throws -> String? {
                guard let sealed = try row.decode([UInt8]?.self, column) else { return nil }
                let plain = try await keySet.open(
                    sealed, for: FieldContext(tenantID: tenant, table: "leads", column: column, rowID: lead))
                return String(decoding: plain, as: UTF8.self)
            }
            var names = try await transaction.query("select enclave_private.practice_people_names() as name", [])
                .map { try $0.decode(String.self, "name") }
            if let caller = try await open("caller_name") { names.append(caller) }
            if let fields = try await open("form_fields"),
                let decoded = try? JSONDecoder().decode([String: String].self, from: Data(fields.utf8))
            {
                names += decoded.filter { $0.key.lowercased().contains("name") }.map(\.value)
            }
            let sets = try await KeywordSets.sets(of: tenant, transaction)
            var call = Call(
                transcript: try await open("transcript"), audio: nil, knownNames: names, sets: sets,
                durationSeconds: try row.decode(Int32?.self, "duration_seconds").map(Int.init),
                disposition: try row.decode(String?.self, "disposition"))
            if call.transcript == nil, let header = try row.decode([UInt8]?.self, "recording_header"),
                let chunks = try row.decode(Int32?.self, "recording_chunks")
            {
                guard try row.decode(Int64.self, "recording_bytes") <= Int64(PCMAudio.maximumBytes) else {
                    call.audio = []  // too long to decode: unreadable
                    return call
                }
                var audio: [UInt8] = []
                try await StoredRecording(tenant: tenant, lead: lead, header: header, chunks: chunks, keySet: keySet)
                    .read(transaction) { _, bytes, _ in audio += bytes }
                call.audio = audio
            }
            return call
        }
    }

    /// Stores the transcript (sealed, when it came from the recording), its redacted form, the
    /// insights and the tokens, or marks the recording unreadable (`transcript` nil). Returns
    /// false when another worker finished the call first.
    @discardableResult
    private func store(
        tenant: UUID, lead: UUID, _ transcript: String?, engine: String?, _ call: Call, fromRecording: Bool = false
    ) async throws -> Bool {
        try await maintenance.withTenant(tenant) { transaction in
            let locked = try await transaction.query(
                "select 1 from enclave.leads where tenant_id = $1 and id = $2 and transcribed_at is null for update",
                [tenant, lead])
            guard !locked.isEmpty else { return false }
            guard let transcript, let engine else {
                try await transaction.query(
                    """
                    update enclave.leads set transcribed_at = now(), transcript_status = 'unreadable'
                    where tenant_id = $1 and id = $2
                    """,
                    [tenant, lead])
                return true
            }
            let keySet = try await keys.keys(tenant, in: transaction)
            let redacted = TranscriptRedactor(knownNames: call.knownNames).redact(transcript)
            let insights = TranscriptInsights.analyse(
                redacted, sets: call.sets, durationSeconds: call.durationSeconds, disposition: call.disposition)
            let tokens = try TranscriptTokens.tokens(
                redacted: redacted, tags: insights.tags, try await keySet.blindIndex())
            // A provider's transcript stays as sealed; ours is sealed with the active key. Every
            // field of a row is sealed by the one version its row names (dek_version), so the row
            // moves to the active key only when it seals nothing else (the reencryptor's rule).
            let sealedVersion = try await transaction.query(
                "select dek_version from enclave.leads where tenant_id = $1 and id = $2", [tenant, lead]
            ).first?.decode(Int32?.self, "dek_version")
            let rowKey: DataKey
            if let sealedVersion {
                rowKey = try await keySet.dataKey(version: UInt32(sealedVersion))
            } else {
                rowKey = try await keySet.activeDataKey()
            }
            func sealRow(_ value: [UInt8], _ column: String) throws -> [UInt8] {
                try FieldCipher.seal(
                    value, with: rowKey,
                    for: FieldContext(tenantID: tenant, table: "leads", column: column, rowID: lead))
            }
            try await transaction.query(
                """
                update enclave.leads set
                    transcript = coalesce($3, transcript), transcript_redacted = $4, insights = $5,
                    transcript_tokens = (select array_agg(decode(t, 'hex')) from unnest($6::text[]) t), transcript_engine = $7, transcribed_at = now(), transcript_status = 'done',
                    dek_version = coalesce(dek_version, $8)
                where tenant_id = $1 and id = $2
                """,
                [
                    tenant, lead, fromRecording ? try sealRow(Array(transcript.utf8), "transcript") : nil,
                    try sealRow(Array(redacted.utf8), "transcript_redacted"),
                    try sealRow(Array(try JSONEncoder().encode(insights)), "insights"), tokens.map(\.hex), engine,
                    Int32(rowKey.version),
                ])
            try await transaction.audit(
                AuditEvent(
                    tenant: tenant, action: .transcriptCreated, objectType: "lead",
                    objectID: lead.uuidString.lowercased(),
                    details: [
                        "engine": .string(engine), "tags": .int(insights.tags.count),
                        "tokens": .int(tokens.count),
                    ]))
            return true
        }
    }
}
