import Foundation
import Postgres

extension PatientRights {
    /// What a patient asked for.
    public enum RequestKind: String, Sendable, CaseIterable, Codable {
        /// Who saw my information: the access report and accounting of disclosures (60 days).
        case accessReport = "access_report"
        /// A copy of my records (164.524: 30 days).
        case copy
        /// Erase my leads (30 days, this platform's rule).
        case erasure
        /// Restrict disclosures of my leads (164.522; 30 days, this platform's rule).
        case restriction
    }

    /// A logged request and its deadline. No identifier of the patient: the leads, by count.
    public struct Request: Sendable, Equatable {
        public let id: UUID
        public let kind: RequestKind
        /// Days, `yyyy-mm-dd`.
        public let receivedOn: String
        public let dueOn: String
        public let leads: Int
        public let loggedBy: String
        public let loggedAt: Date
        public let doneAt: Date?
        public let doneBy: String?
        /// What was done, PHI-free (counts), as JSON text.
        public let outcome: String
        /// Open past its due day.
        public let overdue: Bool
    }

    /// Logs a request received on `receivedOn` (`yyyy-mm-dd`) about `leads` (found by `find`).
    public func logRequest(
        _ token: SessionToken, practice: UUID, kind: RequestKind, receivedOn: String, leads: [UUID]
    ) async throws -> UUID {
        guard Self.isDay(receivedOn) else { throw AccessError(.invalidInput, "the day received is yyyy-mm-dd") }
        return try await identity.withSession(token, tenant: practice) { transaction in
            guard
                let id = try await transaction.query(
                    "select enclave_private.log_patient_request($1, $2, $3::text::date, $4::uuid[]) as id",
                    [practice, kind.rawValue, receivedOn, leads]
                ).first?.decode(UUID.self, "id")
            else { throw AccessError(.conflict, "the request was not logged") }
            return id
        }
    }

    /// The practice's requests, newest first.
    public func requests(_ token: SessionToken, practice: UUID) async throws -> [Request] {
        try await identity.withSession(token, tenant: practice) { transaction in
            try await transaction.query(
                """
                select id, kind, received_on::text as received_on, due_on::text as due_on, leads, logged_by, logged_at,
                       done_at, done_by, outcome::text as outcome, overdue
                from enclave_private.patient_requests($1)
                """,
                [practice]
            ).map { row in
                Request(
                    id: try row.decode(UUID.self, "id"),
                    kind: RequestKind(rawValue: try row.decode(String.self, "kind")) ?? .accessReport,
                    receivedOn: try row.decode(String.self, "received_on"),
                    dueOn: try row.decode(String.self, "due_on"),
                    leads: Int(try row.decode(Int32.self, "leads")), loggedBy: try row.decode(String.self, "logged_by"),
                    loggedAt: try row.decode(Date.self, "logged_at"), doneAt: try row.decode(Date?.self, "done_at"),
                    doneBy: try row.decode(String?.self, "done_by"), outcome: try row.decode(String.self, "outcome"),
                    overdue: try row.decode(Bool.self, "overdue"))
            }
        }
    }

    /// One request's kind and leads, for working on it.
    public func request(_ token: SessionToken, practice: UUID, id: UUID) async throws -> (
        kind: RequestKind, leads: [UUID], done: Bool
    ) {
        try await identity.withSession(token, tenant: practice) { transaction in
            guard
                let row = try await transaction.query(
                    "select kind, lead_ids, done_at from enclave_private.patient_request($1, $2)", [practice, id]
                ).first,
                let kind = RequestKind(rawValue: try row.decode(String.self, "kind"))
            else { throw AccessError(.notFound, "no such request") }
            return (kind, try row.decode([UUID].self, "lead_ids"), try row.decode(Date?.self, "done_at") != nil)
        }
    }

    /// Marks an access-report request done (the report was given).
    @discardableResult
    public func complete(_ token: SessionToken, practice: UUID, id: UUID, outcome: [String: Int]) async throws -> Bool {
        let json = String(decoding: try JSONEncoder().encode(outcome), as: UTF8.self)
        return try await identity.withSession(token, tenant: practice) {
            try await $0.query(
                "select enclave_private.complete_patient_request($1, $2, $3::jsonb) as done", [practice, id, json]
            ).first?.decode(Bool.self, "done") ?? false
        }
    }

    /// Erases the leads of an erasure request: every PHI field and recording of each lead not
    /// under a legal hold. An owner, re-authenticated. Returns how many were erased and held.
    public func erase(
        _ token: SessionToken, practice: UUID, request: UUID, context: RequestContext = RequestContext()
    ) async throws -> (erased: Int, held: Int) {
        try await identity.withSession(token, tenant: practice) { transaction in
            guard
                let row = try await transaction.query(
                    "select * from enclave_private.erase_patient_leads($1, $2, $3, $4::text::inet, $5)",
                    [practice, request, context.requestID, context.client.address, context.client.userAgent]
                ).first
            else { throw AccessError(.conflict, "nothing was erased") }
            return (Int(try row.decode(Int32.self, "erased")), Int(try row.decode(Int32.self, "held")))
        }
    }

    /// Restricts the leads of a restriction request: no webhook or export carries them from now
    /// on. An owner, re-authenticated. Returns how many leads it restricted.
    public func restrict(
        _ token: SessionToken, practice: UUID, request: UUID, context: RequestContext = RequestContext()
    ) async throws -> Int {
        try await identity.withSession(token, tenant: practice) { transaction in
            Int(
                try await transaction.query(
                    "select enclave_private.restrict_patient_leads($1, $2, $3, $4::text::inet, $5) as restricted",
                    [practice, request, context.requestID, context.client.address, context.client.userAgent]
                ).first?.decode(Int32.self, "restricted") ?? 0)
        }
    }

    static func isDay(_ text: String) -> Bool {
        text.utf8.count == 10 && text.wholeMatch(of: /\d{4}-\d{2}-\d{2}/) != nil
    }
}
