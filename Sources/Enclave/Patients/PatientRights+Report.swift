import Foundation
import Postgres

extension PatientRights {
    /// One access to one of the patient's leads, from the practice's audit trail. No PHI: who,
    /// when, what kind of access, to which lead (by id).
    public struct AccessEvent: Sendable, Equatable {
        public let seq: Int64
        public let at: Date
        public let action: String
        /// The lead; nil for an export of the whole practice (it held every lead).
        public let leadID: UUID?
        public let reason: String?
        /// `user`, `ingest`, `operator` or `system`.
        public let actorKind: String
        public let actorID: UUID?
        public let actorEmail: String?
        /// `practice_owner` or `practice_staff` for the practice's own people.
        public let actorRole: String?
        public let agencyName: String?
        /// The agreement in force when an agency's person acted.
        public let agreementID: UUID?
        /// The emergency access it happened under.
        public let breakGlassID: UUID?
        /// A disclosure outside the practice (164.528): a webhook or export, or a read by
        /// someone who is not the practice's own (an agency, a responder, an operator).
        public let disclosure: Bool
        public let chainSeq: Int64?
        /// Linked into the practice's chain, and its link names the event before it there.
        public let linked: Bool
        public let linkIntact: Bool

        /// What kind of access, in words.
        public var kind: String {
            switch action {
            case "phi.read":
                reason == "list" ? "viewed in a list" : reason == "find by caller" ? "found by number" : "opened"
            case "recording.played": "recording played"
            case "phi.disclosed":
                reason == "webhook" ? "sent by webhook" : reason == "patient copy" ? "copy to the patient" : "disclosed"
            case "phi.export": "exported with the practice's data"
            case "lead.created": "received"
            case "lead.redacted": reason == "erasure" ? "erased at the patient's request" : "redacted"
            case "lead.restricted": "restricted at the patient's request"
            case "lead.qualified": "qualified"
            default: action
            }
        }

        /// Who, in words: the person and where they belong.
        public var who: String {
            let person = actorEmail ?? (actorKind == "ingest" ? "tracking source" : actorKind)
            if breakGlassID != nil { return "\(person) (platform responder, emergency access)" }
            if let agencyName { return "\(person) (\(agencyName))" }
            switch actorRole {
            case "practice_owner": return "\(person) (practice owner)"
            case "practice_staff": return "\(person) (practice staff)"
            default: return person
            }
        }
    }

    /// The access report for `leads`: every event about them in the practice's trail since
    /// `since` (nil: all of it, six years and more) until `until`, oldest first.
    public func report(
        _ token: SessionToken, practice: UUID, leads: [UUID], since: Date? = nil, until: Date? = nil
    ) async throws -> [AccessEvent] {
        guard (1...10_000).contains(leads.count) else {
            throw AccessError(.invalidInput, "a report covers 1 to 10,000 of the practice's leads")
        }
        return try await identity.withSession(token, tenant: practice) { transaction in
            try await transaction.query(
                "select * from enclave_private.patient_report($1, $2::uuid[], $3, $4)", [practice, leads, since, until]
            ).map(Self.accessEvent)
        }
    }

    static func accessEvent(_ row: PostgresRow) throws -> AccessEvent {
        AccessEvent(
            seq: try row.decode(Int64.self, "seq"), at: try row.decode(Date.self, "at"),
            action: try row.decode(String.self, "action"), leadID: try row.decode(UUID?.self, "lead_id"),
            reason: try row.decode(String?.self, "reason"), actorKind: try row.decode(String.self, "actor_kind"),
            actorID: try row.decode(UUID?.self, "actor_id"), actorEmail: try row.decode(String?.self, "actor_email"),
            actorRole: try row.decode(String?.self, "actor_role"),
            agencyName: try row.decode(String?.self, "agency_name"),
            agreementID: try row.decode(UUID?.self, "agreement_id"),
            breakGlassID: try row.decode(UUID?.self, "break_glass_id"),
            disclosure: try row.decode(Bool.self, "disclosure"), chainSeq: try row.decode(Int64?.self, "chain_seq"),
            linked: try row.decode(Bool.self, "linked"), linkIntact: try row.decode(Bool.self, "link_intact"))
    }

    /// The report as CSV (RFC 4180): ids, times, people and kinds of access; no PHI.
    public static func csv(_ events: [AccessEvent]) -> String {
        let dates = ISO8601DateFormatter()
        var text = CSV.line([
            "at", "lead", "access", "disclosure", "who", "actor_kind", "actor_email", "agency", "agreement",
            "break_glass", "action", "reason", "audit_seq", "chain_seq", "linked",
        ])
        for event in events {
            text += CSV.line([
                dates.string(from: event.at), event.leadID?.uuidString.lowercased() ?? "all leads (practice export)",
                event.kind, event.disclosure ? "yes" : "no", event.who, event.actorKind, event.actorEmail ?? "",
                event.agencyName ?? "", event.agreementID?.uuidString.lowercased() ?? "",
                event.breakGlassID?.uuidString.lowercased() ?? "", event.action, event.reason ?? "",
                String(event.seq), event.chainSeq.map(String.init) ?? "",
                event.linked ? (event.linkIntact ? "yes" : "link broken") : "not yet",
            ])
        }
        return text
    }
}
