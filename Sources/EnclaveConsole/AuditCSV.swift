import Enclave
import Foundation

/// The audit trail as CSV (`CSV` of the Enclave module: quoted, formulas neutralised).
enum AuditCSV {
    static let header = CSV.line([
        "seq", "at", "actor", "action", "object_type", "object_id", "outcome", "reason", "note",
    ])

    static func line(_ entry: AuditLog.Entry) -> String {
        CSV.line([
            String(entry.seq), entry.at.formatted(.iso8601),
            entry.actorEmail ?? "system", entry.action, entry.objectType ?? "", entry.objectID ?? "", entry.outcome,
            entry.reason ?? "", "",
        ])
    }
}
