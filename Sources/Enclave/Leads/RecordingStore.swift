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
            let key = try await keySet.activeDataKey()
            var sealer = try StreamSealer(
                key: key,
                context: FieldContext(
                    tenantID: credential.practice, table: "recordings", column: "audio", rowID: leadID))
            let chunkSize = sealer.chunkSize
            var pending: [UInt8] = []
            pending.reserveCapacity(chunkSize * 2)
            var index: Int32 = 0
            var total: Int64 = 0
            func flush(_ chunk: ArraySlice<UInt8>, last: Bool) async throws {
                let sealed = try sealer.seal(chunk, isLast: last)
                try await transaction.query(
                    "insert into enclave.recordings (tenant_id, lead_id, chunk_index, dek_version, ciphertext) values ($1, $2, $3, $4, $5)",
                    [credential.practice, leadID, index, Int32(key.version), sealed])
                index += 1
            }
            for try await piece in body {
                try mac.update(piece)
                total += Int64(piece.count)
                guard total <= Self.maximumRecordingBytes else {
                    throw AccessError(.invalidInput, "a recording has at most 1 GiB")
                }
                pending.append(contentsOf: piece)
                // Keep at least one byte back: only the final chunk may carry the last flag.
                while pending.count > chunkSize {
                    try await flush(pending[0..<chunkSize], last: false)
                    pending.removeFirst(chunkSize)
                }
            }
            guard HMAC.constantTimeEqual(try mac.finalize(), signature.mac) else {
                throw AccessError(.unauthenticated, "the signature does not match this source's secret")
            }
            try await flush(pending[...], last: true)
            let finished = try await transaction.query(
                "select enclave_private.ingest_finish_recording($1, $2, $3, $4, $5) as finished",
                [leadID, sealer.header, total, index, contentType])
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
