import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@Suite("enclave breakglass, holds and compliance, run as processes")
struct ComplianceCommandTests {
    @Test("responders are granted and listed, holds placed, listed and released, and offboarding refused under a hold")
    func operatorCommands() async throws {
        try await ScratchDatabase.migrated { database in
            let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-kek-\(UUID().uuidString)"
            ).path
            defer { try? FileManager.default.removeItem(atPath: keyFile) }
            let env: [String: String?] = [
                "ENCLAVE_MAINT_DATABASE_URL": try database.url("ENCLAVE_MAINT_DATABASE_URL"),
                "ENCLAVE_MASTER_KEY_FILE": keyFile, "ENCLAVE_SMTP_URL": nil,
            ]
            #expect(try await CLIProcess.run(["keys", "init"], environment: env).status == 0)
            let created = try await CLIProcess.run(["practices", "create", "--name", "Bright Smile"], environment: env)
            let practice = try #require(
                created.standardOutput.split(whereSeparator: \.isWhitespace).map(String.init).first {
                    UUID(uuidString: $0) != nil
                })
            #expect(
                try await CLIProcess.run(
                    ["users", "create", "--email", "rita@platform.test", "--name", "Rita"], environment: env,
                    input: "a long enough passphrase\n"
                ).status == 0)
            let unknown = try await CLIProcess.run(
                ["breakglass", "grant-responder", "nobody@platform.test"], environment: env)
            #expect(unknown.status == 1 && unknown.standardError.contains("emergency access needs"))
            #expect(
                try await CLIProcess.run(["breakglass", "grant-responder", "rita@platform.test"], environment: env)
                    .status == 0)
            let empty = try await CLIProcess.run(["breakglass", "list"], environment: env)
            #expect(empty.status == 0 && empty.standardOutput.contains("no break-glass access has been opened"))

            let badHold = try await CLIProcess.run(["holds", "place", practice, "--reason", "x"], environment: env)
            #expect(
                badHold.status == 1 && badHold.standardError.contains("legal hold needs a reason"), "\(badHold.output)")
            let placed = try await CLIProcess.run(
                ["holds", "place", practice, "--reason", "litigation 2026-114"], environment: env)
            #expect(placed.status == 0, "\(placed.output)")
            let hold = try #require(
                placed.standardOutput.split(separator: " ").last.map {
                    $0.trimmingCharacters(in: .whitespacesAndNewlines)
                })
            #expect(
                try await CLIProcess.run(["holds", "list", practice], environment: env).standardOutput.contains(
                    "ACTIVE"))
            let refused = try await CLIProcess.run(["tenants", "offboard", practice, "--confirm"], environment: env)
            #expect(refused.status == 1 && refused.standardError.contains("legal hold"), "\(refused.output)")
            #expect(
                try await CLIProcess.run(["holds", "release", hold], environment: env).standardOutput.contains(
                    "released"))

            let work = try await CLIProcess.run(["compliance", "work", "--once"], environment: env)
            #expect(work.status == 0, "\(work.output)")
            #expect(work.standardOutput.contains("alerts raised") && work.standardOutput.contains("no email is sent"))
        }
    }
}
