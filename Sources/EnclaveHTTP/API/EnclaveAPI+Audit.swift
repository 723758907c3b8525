import Enclave
import Foundation
import OpenAPIRuntime
import Sealing

/// Audit: a practice's audit trail and its accounting of disclosures.
extension EnclaveAPI {
    func practiceAudit(_ input: Operations.practiceAudit.Input) async throws -> Operations.practiceAudit.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            var action: AuditAction?
            if let name = input.query.action?.rawValue {
                guard let known = AuditAction(rawValue: name) else {
                    throw Problem(.badRequest, "action is not a known audit action", type: "invalid-input")
                }
                action = known
            }
            let entries = try await services.auditLog.practiceEvents(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                filter: .init(
                    since: input.query.since, until: input.query.until, action: action,
                    beforeSeq: input.query.before_seq, limit: input.query.limit ?? 100))
            return .ok(.init(body: .json(entries.map(Self.entry))))
        }
    }

    func practiceDisclosures(_ input: Operations.practiceDisclosures.Input) async throws
        -> Operations.practiceDisclosures.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let entries = try await services.auditLog.disclosures(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), since: input.query.since,
                until: input.query.until, beforeSeq: input.query.before_seq, limit: input.query.limit ?? 100)
            return .ok(.init(body: .json(entries.map(Self.entry))))
        }
    }

    static func entry(_ entry: AuditLog.Entry) -> Components.Schemas.AuditEntry {
        .init(
            seq: entry.seq, at: entry.at, actor_id: entry.actorID.map(text), actor_email: entry.actorEmail,
            agency: entry.agency, action: entry.action, object_type: entry.objectType, object_id: entry.objectID,
            outcome: .init(rawValue: entry.outcome) ?? .ok, reason: entry.reason)
    }
}
