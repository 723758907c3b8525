import Foundation
import Postgres
import Sealing

/// The one writer of new leads: seals each `NewLead`'s PHI with the practice's active data key
/// (each field bound to the practice, the table, its column and its row), indexes the caller's
/// number and email address; `enclave_private.insert_leads` fills attribution the lead leaves out from its source's
/// defaults and inserts them all in one statement. Every ingest path and the seeder use it.
struct LeadWriter {
    let practice: UUID
    let source: UUID
    let keys: TenantKeySet

    /// Inserts `leads` (one or a batch) in `transaction` through `enclave_private.insert_leads`;
    /// returns how many were stored. A lead whose idempotency key its source used before is not.
    func insert(_ leads: [NewLead], in transaction: Transaction) async throws -> Int {
        guard !leads.isEmpty else { return 0 }
        let sealed = try await seal(leads)
        let stored = try await transaction.query(
            "select enclave_private.insert_leads($1, $2, $3, $4::jsonb) as stored",
            [practice, source, Int32(sealed.version), sealed.rows]
        ).first?.decode(Int32.self, "stored")
        return Int(stored ?? 0)
    }

    /// The leads sealed with the practice's active data key, as the JSON array `insert_leads`
    /// reads (the keys are the columns' names, bytea as hex), and that key's version.
    func seal(_ leads: [NewLead]) async throws -> (version: UInt32, rows: String) {
        let key = try await keys.activeDataKey()
        let index = try await keys.blindIndex()
        let rows = try leads.map { lead in
            let seal = LeadSealer(key: key, practice: practice, lead: lead.id)
            return Row(
                id: lead.id, kind: lead.kind.rawValue, occurred_at: lead.occurredAt,
                source: lead.attribution.source, medium: lead.attribution.medium,
                campaign: lead.attribution.campaign, keyword: lead.attribution.keyword,
                landing_page: lead.attribution.landingPage, gclid: lead.attribution.gclid,
                called_number: lead.calledNumber, duration_seconds: lead.durationSeconds,
                disposition: lead.disposition,
                caller_number: try seal(lead.callerNumber, "caller_number")?.hex,
                caller_name: try seal(lead.callerName, "caller_name")?.hex,
                transcript: try seal(lead.transcript, "transcript")?.hex,
                form_fields: try seal(try lead.formFields.map { Array(try JSONEncoder().encode($0)) }, "form_fields")?
                    .hex,
                page_url: try seal(lead.pageURL, "page_url")?.hex,
                caller_index: try lead.callerNumber.map { try index.index(normalized: $0).hex },
                email_index: try NewLead.emailAddress(in: lead.formFields).map {
                    try index.index(emailAddress: $0).hex
                },
                idempotency_key: lead.idempotencyKey)
        }
        return (key.version, String(decoding: try Self.encoder.encode(rows), as: UTF8.self))
    }

    /// A lead as the statement reads it (the JSON keys are the columns' names).
    private struct Row: Encodable {
        let id: UUID
        let kind: String
        let occurred_at: Date?
        let source, medium, campaign, keyword, landing_page, gclid, called_number: String?
        let duration_seconds: Int32?
        let disposition: String?
        let caller_number, caller_name, transcript, form_fields, page_url, caller_index, email_index: String?
        let idempotency_key: String?
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date))
        }
        return encoder
    }
}

/// Seals a new lead's PHI fields with the practice's active data key, each bound to its
/// practice, table, column and row.
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
