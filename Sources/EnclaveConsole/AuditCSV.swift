import Enclave
import Foundation

/// The audit trail as CSV (RFC 4180): every field quoted, and a field that a spreadsheet would
/// run as a formula (`=`, `+`, `-`, `@`, tab, carriage return) prefixed with `'`.
enum AuditCSV {
    static let header = line(["seq", "at", "actor", "action", "object_type", "object_id", "outcome", "reason", "note"])

    static func line(_ entry: AuditLog.Entry) -> String {
        line([
            String(entry.seq), entry.at.formatted(.iso8601),
            entry.actorEmail ?? "system", entry.action, entry.objectType ?? "", entry.objectID ?? "", entry.outcome,
            entry.reason ?? "", "",
        ])
    }

    static func line(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",") + "\r\n"
    }

    static func field(_ value: String) -> String {
        let neutral = value.first.map { "=+-@\t\r".contains($0) } == true ? "'" + value : value
        return "\"" + neutral.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
