import Foundation
import Postgres
import Sealing

extension IngestService {
    /// The most bytes a recording may have.
    public static let maximumRecordingBytes: Int64 = 1 << 30

    /// Stores a call's recording from a stream of bytes, sealed chunk by chunk (64 KiB), in one
    /// transaction. The signature covers the whole body and is checked at the end, before
    /// commit; memory stays about two chunks whatever the size.
    public func attachRecording<Body: AsyncSequence & Sendable>(
        sourceID: UUID,
        signature header: String,
        leadID: UUID,
        contentType: String,
        body: Body,
        context: RequestContext = RequestContext()
    ) async throws -> Int64 where Body.Element == [UInt8] {
        guard contentType.hasPrefix("audio/"), contentType.count <= 100 else {
            throw AccessError(.invalidInput, "a recording's content type must be audio/*")
        }
        let signature = try IngestSignature(header: header)
        try signature.checkFreshness(now: now())
        let credential = try await credential(sourceID)
        let mac = try HMACStream(key: Array(credential.secret.utf8))
        try mac.update(Array("\(signature.timestamp).".utf8))
        return try await withCredential(credential) { transaction in
            let lead = try await transaction.query(
                "select has_recording from enclave_private.ingest_begin_recording($1)", [leadID])
            guard let row = lead.first else { throw AccessError(.notFound, "no such call for this source") }
            guard try !row.decode(Bool.self, "has_recording") else {
                throw AccessError(.conflict, "this call already has a recording")
            }
            try await checkReplay(transaction, signature)
            let keySet = try await keys.ingestKeys(credential.practice, in: transaction)
            var writer = try RecordingWriter(
                transaction: transaction, practice: credential.practice, lead: leadID,
                key: try await keySet.activeDataKey())
            for try await piece in body {
                try mac.update(piece)
                try await writer.append(piece)
            }
            guard HMAC.constantTimeEqual(try mac.finalize(), signature.mac) else {
                throw AccessError(.unauthenticated, "the signature does not match this source's secret")
            }
            let (header, total, index) = try await writer.finish()
            let finished = try await transaction.query(
                "select enclave_private.ingest_finish_recording($1, $2, $3, $4, $5) as finished",
                [leadID, header, total, index, contentType])
            guard try finished.first?.decode(Bool.self, "finished") == true else {
                throw AccessError(.conflict, "this call already has a recording")
            }
            try await transaction.audit(
                AuditEvent(
                    tenant: credential.practice, action: .leadCreated, objectType: "recording",
                    objectID: leadID.uuidString.lowercased(), details: ["bytes": .int(Int(total))]),
                context: context)
            return total
        }
    }
}

/// Seals a call's recording into `enclave.recordings` as its bytes arrive: 64 KiB chunks, each
/// sealed with the practice's active data key bound to the call, in the caller's transaction.
/// Memory stays about two chunks whatever the size.
struct RecordingWriter {
    let transaction: Transaction
    let practice: UUID
    let lead: UUID
    let keyVersion: Int32
    private var sealer: StreamSealer
    private var pending: [UInt8] = []
    private(set) var chunks: Int32 = 0
    private(set) var total: Int64 = 0

    init(transaction: Transaction, practice: UUID, lead: UUID, key: DataKey) throws {
        self.transaction = transaction
        self.practice = practice
        self.lead = lead
        keyVersion = Int32(key.version)
        sealer = try StreamSealer(
            key: key, context: FieldContext(tenantID: practice, table: "recordings", column: "audio", rowID: lead))
        pending.reserveCapacity(sealer.chunkSize * 2)
    }

    mutating func append(_ piece: [UInt8]) async throws {
        total += Int64(piece.count)
        guard total <= IngestService.maximumRecordingBytes else {
            throw AccessError(.invalidInput, "a recording has at most 1 GiB")
        }
        pending.append(contentsOf: piece)
        // Keep at least one byte back: only the final chunk may carry the last flag.
        while pending.count > sealer.chunkSize {
            try await flush(pending[0..<sealer.chunkSize], last: false)
            pending.removeFirst(sealer.chunkSize)
        }
    }

    /// Seals what is left as the last chunk; returns the stream header, the size and the chunk count.
    mutating func finish() async throws -> (header: [UInt8], total: Int64, chunks: Int32) {
        try await flush(pending[...], last: true)
        pending = []
        return (sealer.header, total, chunks)
    }

    private mutating func flush(_ chunk: ArraySlice<UInt8>, last: Bool) async throws {
        let sealed = try sealer.seal(chunk, isLast: last)
        try await transaction.query(
            "insert into enclave.recordings (tenant_id, lead_id, chunk_index, dek_version, ciphertext) values ($1, $2, $3, $4, $5)",
            [practice, lead, chunks, keyVersion, sealed])
        chunks += 1
    }
}

/// A call's stored recording, opened to be read back in order in the caller's transaction (the
/// owner's export, the re-encryptor, the transcription worker). Memory stays one batch of chunks.
struct StoredRecording {
    let tenant: UUID
    let lead: UUID
    let chunks: Int32
    let opener: StreamOpener

    /// Chunks read per query.
    static let batch: Int32 = 16

    /// The recording whose stream header is `header`, opened with the data key that sealed it.
    init(tenant: UUID, lead: UUID, header: [UInt8], chunks: Int32, keySet: TenantKeySet) async throws {
        self.tenant = tenant
        self.lead = lead
        self.chunks = chunks
        opener = try StreamOpener(
            header: header, key: try await keySet.dataKey(version: StreamCipher.keyVersion(ofHeader: header)),
            context: FieldContext(tenantID: tenant, table: "recordings", column: "audio", rowID: lead))
    }

    /// Each chunk, decrypted, in order: `each` gets its index, its bytes and whether it is the last.
    ///
    /// - Throws: `SealingError.streamIncomplete` for a missing chunk; the cipher's errors for one
    ///   that does not open.
    func read(_ transaction: Transaction, _ each: (Int32, [UInt8], Bool) async throws -> Void) async throws {
        var index: Int32 = 0
        while index < chunks {
            let batch = try await transaction.query(
                """
                select chunk_index, ciphertext from enclave.recordings
                where tenant_id = $1 and lead_id = $2 and chunk_index between $3 and $4 order by chunk_index
                """,
                [tenant, lead, index, index + Self.batch - 1])
            guard !batch.isEmpty else { throw SealingError(.streamIncomplete, "a recording chunk is missing") }
            for chunk in batch {
                let at = try chunk.decode(Int32.self, "chunk_index")
                guard at == index else { throw SealingError(.streamIncomplete, "a recording chunk is missing") }
                let isLast = at == chunks - 1
                try await each(
                    at,
                    try opener.openChunk(
                        try chunk.decode([UInt8].self, "ciphertext"), index: UInt32(at), isLast: isLast),
                    isLast)
                index += 1
            }
        }
    }
}
