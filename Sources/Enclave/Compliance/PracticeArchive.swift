import Foundation
import Postgres
import Sealing

/// A practice's data in a form the practice opens without Enclave: a tar holding `leads.csv`,
/// `leads.json` (the same leads, exact values), `recordings/<lead id>.<ext>` (the audio as the
/// provider sent it) and `README.txt`, encrypted in the format of the `age` tool to the
/// practice's age public key or a passphrase. Open it with
/// `age -d -i key.txt export.tar.age | tar x` (or `age -d` and the passphrase).
///
/// Recordings stream through (memory stays a chunk); the lead tables are built in memory and
/// written last.
public enum PracticeArchive {
    /// What an archive holds.
    public struct Counts: Sendable, Equatable {
        public let leads: Int
        public let recordings: Int
    }

    static let columns = [
        "id", "kind", "occurred_at", "source", "medium", "campaign", "keyword", "landing_page", "gclid",
        "called_number", "duration_seconds", "disposition", "caller_number", "caller_name", "transcript",
        "form_fields", "page_url", "recording_file",
    ]
    static let sealedColumns = ["caller_number", "caller_name", "transcript", "form_fields", "page_url"]

    /// Writes every lead and recording of `practice`, as `transaction` sees them, to a new file
    /// at `path` (mode 0600; it must not exist). The file is removed on any failure.
    /// `withRestricted` false leaves out the leads restricted at a patient's request: an export
    /// the practice hands on is a disclosure, which a restriction stops; the practice's own
    /// archive at offboarding keeps them.
    public static func write(
        practice: UUID, in transaction: Transaction, keys: TenantKeyStore, to recipient: AgeEncryptor.Recipient,
        path: String, withRestricted: Bool = true
    ) async throws -> Counts {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError("\(path) already exists; not overwriting it")
        }
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw ConfigurationError("\(path): cannot be created") }
        do {
            let encryptor = try AgeEncryptor(to: recipient) { try handle.write(contentsOf: $0) }
            var tar = TarWriter { try encryptor.write($0) }
            let counts = try await writeContents(
                practice, transaction, keys, only: nil, withRestricted: withRestricted, &tar
            ) { counts in
                """
                Exported from Enclave on \(Date().formatted(.iso8601)) for practice \(practice.uuidString.lowercased()).
                leads.csv and leads.json hold the same \(counts.leads) leads (JSON keeps exact values; CSV fields a \
                spreadsheet would run as formulas start with '). recordings/ holds \(counts.recordings) recordings, \
                named by lead id, as the provider sent them.

                """
            }
            try tar.finish()
            try encryptor.finish()
            try handle.synchronize()
            try handle.close()
            return counts
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
    }

    /// Writes the archive as `write` does and records it as `phi.export` in the same
    /// transaction; the file is removed when the event cannot be written.
    public static func export(
        practice: UUID, in transaction: Transaction, keys: TenantKeyStore, to recipient: AgeEncryptor.Recipient,
        path: String, reason: String, withRestricted: Bool = true, context: RequestContext = RequestContext()
    ) async throws -> Counts {
        let counts = try await write(
            practice: practice, in: transaction, keys: keys, to: recipient, path: path, withRestricted: withRestricted)
        do {
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .phiExport, objectType: "practice",
                    objectID: practice.uuidString.lowercased(), reason: reason,
                    details: ["leads": .int(counts.leads), "recordings": .int(counts.recordings)]),
                context: context)
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        return counts
    }

    /// Writes `leads.csv`, `leads.json`, `recordings/` and `README.txt` (from `readme`) to
    /// `archive`: the practice's leads, or those of `only`.
    static func writeContents<Archive: ArchiveWriter>(
        _ practice: UUID, _ transaction: Transaction, _ keys: TenantKeyStore, only: [UUID]?, withRestricted: Bool,
        _ tar: inout Archive, readme: (Counts) -> String
    ) async throws -> Counts {
        let keySet = try await keys.keys(practice, in: transaction)
        var csv = CSV.line(columns)
        var json: [[String: Any]] = []
        var recordings = 0
        var cursor = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let dates = ISO8601DateFormatter()
        while true {
            let rows = try await transaction.query(
                """
                select id, kind, occurred_at, source, medium, campaign, keyword, landing_page, gclid, called_number,
                       duration_seconds, disposition, caller_number, caller_name, transcript, form_fields, page_url,
                       recording_header, recording_bytes, recording_chunks, recording_content_type
                from enclave.leads where tenant_id = $1 and id > $2 and ($3 or restricted_at is null)
                  and ($4::uuid[] is null or id = any ($4::uuid[]))
                order by id limit 500
                """,
                [practice, cursor, withRestricted, only])
            if rows.isEmpty { break }
            for row in rows {
                let id = try row.decode(UUID.self, "id")
                cursor = id
                var lead: [String: String] = [
                    "id": id.uuidString.lowercased(), "kind": try row.decode(String.self, "kind"),
                    "occurred_at": dates.string(from: try row.decode(Date.self, "occurred_at")),
                ]
                for column in [
                    "source", "medium", "campaign", "keyword", "landing_page", "gclid", "called_number", "disposition",
                ] {
                    lead[column] = try row.decode(String?.self, column)
                }
                lead["duration_seconds"] = try row.decode(Int32?.self, "duration_seconds").map(String.init)
                for column in sealedColumns {
                    guard let sealed = try row.decode([UInt8]?.self, column) else { continue }
                    let plain = try await keySet.open(
                        sealed, for: FieldContext(tenantID: practice, table: "leads", column: column, rowID: id))
                    lead[column] = String(decoding: plain, as: UTF8.self)
                }
                if let header = try row.decode([UInt8]?.self, "recording_header"),
                    let chunks = try row.decode(Int32?.self, "recording_chunks"),
                    let size = try row.decode(Int64?.self, "recording_bytes")
                {
                    let file =
                        "recordings/\(id.uuidString.lowercased()).\(fileExtension(try row.decode(String?.self, "recording_content_type")))"
                    try tar.startFile(file, size: size, modified: Date())
                    try await StoredRecording(
                        tenant: practice, lead: id, header: header, chunks: chunks, keySet: keySet
                    )
                    .read(transaction) { _, bytes, _ in try tar.append(bytes) }
                    lead["recording_file"] = file
                    recordings += 1
                }
                csv += CSV.line(columns.map { lead[$0] ?? "" })
                json.append(lead)
            }
        }
        let counts = Counts(leads: json.count, recordings: recordings)
        try tar.add("README.txt", Array(readme(counts).utf8))
        try tar.add("leads.csv", Array(csv.utf8))
        try tar.add(
            "leads.json",
            Array(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted])))
        return counts
    }

    static func fileExtension(_ contentType: String?) -> String {
        switch contentType?.lowercased() {
        case "audio/wav", "audio/x-wav", "audio/wave": "wav"
        case "audio/mpeg", "audio/mp3": "mp3"
        case "audio/ogg": "ogg"
        case "audio/webm": "webm"
        case "audio/mp4", "audio/m4a", "audio/x-m4a": "m4a"
        default: "audio"
        }
    }
}
