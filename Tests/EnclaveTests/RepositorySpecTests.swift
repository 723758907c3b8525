import EnclaveTestSupport
import Foundation
import Postgres
import Testing

/// The spec's audit actions (the `action` filter of the practice's audit trail), as listed.
func specAuditActions(_ spec: String) -> Set<String>? {
    guard let start = spec.range(of: "- name: action\n"),
        let open = spec.range(of: "enum: [", range: start.upperBound..<spec.endIndex),
        let close = spec.range(of: "]", range: open.upperBound..<spec.endIndex)
    else { return nil }
    return Set(
        spec[open.upperBound..<close.lowerBound].split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines)
        })
}

@Suite("The repository against the database (the documents: EnclaveUnitTests, RepositoryTests)")
struct RepositorySpecTests {
    @Test("the spec's audit actions are exactly the audit_actions table's")
    func auditActions() async throws {
        let spec = try String(
            contentsOf: TestEnvironment.packageRoot.appendingPathComponent("Sources/EnclaveHTTP/openapi.yaml"),
            encoding: .utf8)
        let listed = try #require(specAuditActions(spec))
        #expect(
            specAuditActions("- name: action\n  schema:\n    enum: [auth.login, phi.read]\n") == [
                "auth.login", "phi.read",
            ])
        let table = try await ScratchDatabase.migrated { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            return Set(
                try await connection.query("select action from enclave.audit_actions").map {
                    try $0.decode(String.self, "action")
                })
        }
        #expect(listed.subtracting(table).sorted() == [], "in the spec, not in audit_actions")
        #expect(table.subtracting(listed).sorted() == [], "in audit_actions, not in the spec")
    }
}
