import Foundation
import Postgres
import Sealing

/// Offboarding a practice: optionally export its data for the practice, close every way in,
/// delete its PHI, destroy its keys, and keep its audit chain.
public struct Offboarding: Sendable {
    /// What offboarding did, and what remains for backups.
    public struct Report: Sendable {
        public let practice: UUID
        public let exportedLeads: Int?
        public let exportedRecordings: Int?
        public let agreementsRevoked: Int
        public let sessionsEnded: Int
        public let credentialsDisabled: Int
        public let leadsDeleted: Int
        public let keysDestroyed: Int
        /// Master key versions that wrapped the destroyed keys: older backups still hold copies
        /// of the practice's keys wrapped by these, readable until these versions are destroyed.
        public let masterKeyVersions: [UInt32]
    }

    public let keys: KeyManagement

    public init(keys: KeyManagement) {
        self.keys = keys
    }

    /// The practice's name, for the operator to confirm.
    public func name(of practice: UUID) async throws -> String {
        guard
            let name = try await keys.maintenance.pool.query(
                "select name from enclave.practices where id = $1 and status <> 'offboarded'", [practice]
            ).first?.decode(String.self, "name")
        else {
            throw ConfigurationError(
                "no practice \(practice.uuidString.lowercased()) to offboard (unknown, or already offboarded)")
        }
        return name
    }

    /// Offboards `practice`. With `export`, first writes every lead and recording, decrypted,
    /// into an archive sealed with the practice's passphrase, recorded as `phi.export`.
    public func offboard(
        _ practice: UUID,
        export: (path: String, passphrase: String)? = nil,
        exportCost: PasswordHasher.Cost = .owasp
    ) async throws -> Report {
        _ = try await name(of: practice)
        var exported: (Int, Int)?
        if let export {
            exported = try await write(practice, to: export.path, passphrase: export.passphrase, cost: exportCost)
        }
        let closed = try await keys.maintenance.pool.query(
            "select agreements, sessions, credentials from enclave_private.close_practice_access($1)", [practice]
        ).first
        let store = keys.store
        let (deleted, destroyed, versions) = try await keys.maintenance.withTenant(practice) {
            transaction -> (Int, Int, [UInt32]) in
            let versions = try await transaction.query(
                "select distinct kek_version from enclave.tenant_keys where tenant_id = $1 and state <> 'destroyed' order by 1",
                [practice]
            ).map { UInt32(try $0.decode(Int32.self, "kek_version")) }
            try await transaction.query("delete from enclave.recordings where tenant_id = $1", [practice])
            let deleted = try await transaction.execute("delete from enclave.leads where tenant_id = $1", [practice])
            for table in [
                "enclave.ingest_replays", "enclave.outbox", "enclave.webhook_endpoints", "enclave.tracking_sources",
            ] {
                // Table names are fixed here, never input.
                try await transaction.query("delete from \(table) where tenant_id = $1", [practice])
            }
            let destroyed = try await store.destroyAll(practice, in: transaction)
            try await transaction.audit(
                AuditEvent(
                    tenant: practice, action: .tenantOffboarded, objectType: "practice",
                    objectID: practice.uuidString.lowercased(),
                    details: ["leads_deleted": .int(deleted), "keys_destroyed": .int(destroyed)]))
            try await transaction.query("select enclave_private.finish_offboarding($1)", [practice])
            return (deleted, destroyed, versions)
        }
        return Report(
            practice: practice, exportedLeads: exported?.0, exportedRecordings: exported?.1,
            agreementsRevoked: Int(try closed?.decode(Int32.self, "agreements") ?? 0),
            sessionsEnded: Int(try closed?.decode(Int32.self, "sessions") ?? 0),
            credentialsDisabled: Int(try closed?.decode(Int32.self, "credentials") ?? 0),
            leadsDeleted: deleted, keysDestroyed: destroyed, masterKeyVersions: versions)
    }

    private func write(_ practice: UUID, to path: String, passphrase: String, cost: PasswordHasher.Cost) async throws
        -> (Int, Int)
    {
        let writer = try ExportArchive.Writer(path: path, practice: practice, passphrase: passphrase, cost: cost)
        let store = keys.store
        do {
            try await keys.maintenance.withTenant(practice) { transaction in
                let keySet = try await store.keys(practice, in: transaction)
                var cursor = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
                while true {
                    let rows = try await transaction.query(
                        """
                        select id, kind, occurred_at, source, medium, campaign, keyword, landing_page, gclid, called_number,
                               duration_seconds, disposition, caller_number, caller_name, transcript, form_fields, page_url,
                               recording_header, recording_bytes, recording_chunks, recording_content_type
                        from enclave.leads where tenant_id = $1 and id > $2 order by id limit 500
                        """,
                        [practice, cursor])
                    if rows.isEmpty { break }
                    for row in rows {
                        let id = try row.decode(UUID.self, "id")
                        cursor = id
                        var lead: [String: String] = [
                            "id": id.uuidString.lowercased(), "kind": try row.decode(String.self, "kind"),
                        ]
                        lead["occurred_at"] = ISO8601DateFormatter().string(
                            from: try row.decode(Date.self, "occurred_at"))
                        for column in [
                            "source", "medium", "campaign", "keyword", "landing_page", "gclid", "called_number",
                            "disposition",
                        ] {
                            lead[column] = try row.decode(String?.self, column)
                        }
                        lead["duration_seconds"] = try row.decode(Int32?.self, "duration_seconds").map(String.init)
                        for column in ["caller_number", "caller_name", "transcript", "form_fields", "page_url"] {
                            guard let sealed = try row.decode([UInt8]?.self, column) else { continue }
                            let plain = try await keySet.open(
                                sealed, for: FieldContext(tenantID: practice, table: "leads", column: column, rowID: id)
                            )
                            lead[column] = String(decoding: plain, as: UTF8.self)
                        }
                        try writer.add(
                            lead: Array(try JSONSerialization.data(withJSONObject: lead, options: [.sortedKeys])))
                        if let header = try row.decode([UInt8]?.self, "recording_header"),
                            let chunks = try row.decode(Int32?.self, "recording_chunks"),
                            let bytes = try row.decode(Int64?.self, "recording_bytes")
                        {
                            let opener = try StreamOpener(
                                header: header,
                                key: try await keySet.dataKey(version: StreamCipher.keyVersion(ofHeader: header)),
                                context: FieldContext(
                                    tenantID: practice, table: "recordings", column: "audio", rowID: id))
                            var index: Int32 = 0
                            try writer.startRecording(
                                lead: id,
                                contentType: try row.decode(String?.self, "recording_content_type") ?? "audio/*",
                                bytes: bytes)
                            // Chunks are read in batches and written as they come.
                            while index < chunks {
                                let batch = try await transaction.query(
                                    """
                                    select chunk_index, ciphertext from enclave.recordings
                                    where tenant_id = $1 and lead_id = $2 and chunk_index between $3 and $4 order by chunk_index
                                    """,
                                    [practice, id, index, index + 15])
                                guard !batch.isEmpty else {
                                    throw SealingError(.streamIncomplete, "a recording chunk is missing")
                                }
                                let pieces = try batch.map { chunk in
                                    let at = try chunk.decode(Int32.self, "chunk_index")
                                    return try opener.openChunk(
                                        try chunk.decode([UInt8].self, "ciphertext"), index: UInt32(at),
                                        isLast: at == chunks - 1)
                                }
                                try writer.addRecordingPieces(pieces)
                                index += Int32(batch.count)
                            }
                        }
                    }
                }
                try await transaction.audit(
                    AuditEvent(
                        tenant: practice, action: .phiExport, objectType: "practice",
                        objectID: practice.uuidString.lowercased(),
                        reason: "offboarding export",
                        details: ["leads": .int(writer.leads), "recordings": .int(writer.recordings)]))
            }
            try writer.finish()
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        return (writer.leads, writer.recordings)
    }
}
