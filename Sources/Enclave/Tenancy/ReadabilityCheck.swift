import Foundation
import Postgres
import Sealing

/// Opens every sealed field and the first chunk of every recording of each practice with the
/// master key at hand: after a restore, proof that the data reads back; after a master key
/// version is destroyed, proof that what it wrapped no longer does.
public struct ReadabilityCheck: Sendable {
    /// One practice's outcome.
    public struct Result: Sendable {
        public let practice: UUID
        public let leads: Int
        public let fields: Int
        public let recordings: Int
        /// Why nothing could be opened (no PHI, no key material), or nil.
        public let failure: String?
    }

    public let keys: KeyManagement

    public init(keys: KeyManagement) {
        self.keys = keys
    }

    public func run(practices: [UUID]? = nil) async throws -> [Result] {
        var ids = practices ?? []
        if practices == nil {
            ids = try await keys.maintenance.pool.query(
                "select id from enclave.practices where status = 'active' order by id"
            ).map { try $0.decode(UUID.self, "id") }
        }
        var results: [Result] = []
        for practice in ids {
            do {
                results.append(try await check(practice))
            } catch {
                results.append(
                    Result(
                        practice: practice, leads: 0, fields: 0, recordings: 0, failure: logSafeDescription(of: error)))
            }
        }
        return results
    }

    private func check(_ practice: UUID) async throws -> Result {
        let store = keys.store
        return try await keys.maintenance.withTenant(practice) { transaction in
            let keySet = try await store.keys(practice, in: transaction)
            var leads = 0
            var fields = 0
            var recordings = 0
            var cursor = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            while true {
                let rows = try await transaction.query(
                    """
                    select l.id, l.caller_number, l.caller_name, l.transcript, l.form_fields, l.page_url,
                           l.transcript_redacted, l.insights, l.recording_header, r.ciphertext, l.recording_chunks
                    from enclave.leads l
                    left join enclave.recordings r on r.tenant_id = l.tenant_id and r.lead_id = l.id and r.chunk_index = 0
                    where l.tenant_id = $1 and l.id > $2 order by l.id limit 1000
                    """,
                    [practice, cursor])
                if rows.isEmpty { break }
                for row in rows {
                    let id = try row.decode(UUID.self, "id")
                    cursor = id
                    leads += 1
                    for column in Reencryptor.fields {
                        guard let sealed = try row.decode([UInt8]?.self, column) else { continue }
                        _ = try await keySet.open(
                            sealed, for: FieldContext(tenantID: practice, table: "leads", column: column, rowID: id))
                        fields += 1
                    }
                    if let header = try row.decode([UInt8]?.self, "recording_header"),
                        let chunk = try row.decode([UInt8]?.self, "ciphertext"),
                        let chunks = try row.decode(Int32?.self, "recording_chunks")
                    {
                        let opener = try StreamOpener(
                            header: header,
                            key: try await keySet.dataKey(version: StreamCipher.keyVersion(ofHeader: header)),
                            context: FieldContext(tenantID: practice, table: "recordings", column: "audio", rowID: id))
                        _ = try opener.openChunk(chunk, index: 0, isLast: chunks == 1)
                        recordings += 1
                    }
                }
            }
            // Opening PHI is a read, whoever does it: recorded in the practice's chain, in this
            // transaction (a check that cannot record itself does not run).
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .phiRead, objectType: "practice",
                    objectID: practice.uuidString.lowercased(),
                    details: [
                        "purpose": .string("readability check"), "leads": .int(leads), "fields": .int(fields),
                        "recordings": .int(recordings),
                    ]))
            return Result(practice: practice, leads: leads, fields: fields, recordings: recordings, failure: nil)
        }
    }
}
