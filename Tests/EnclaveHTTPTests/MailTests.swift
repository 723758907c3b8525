import Enclave
import EnclaveHTTP
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import EnclaveWorkers
import Foundation
import Postgres
import Testing

/// A real SMTP server on loopback (aiosmtpd), writing each message it receives to a directory.
final class SMTPSink: @unchecked Sendable {
    let directory: URL
    let port: Int
    private let process: Process
    private let input: Pipe

    init(_ options: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = TestEnvironment.python
        process.arguments =
            [TestEnvironment.packageRoot.appendingPathComponent("scripts/smtp_sink.py").path, directory.path]
            + options
        input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        guard line.hasPrefix("ready "),
            let port = Int(line.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw TestSetupError(
                "the SMTP sink did not start (scripts/python with aiosmtpd; scripts/setup installs it): \(line)")
        }
        self.port = port
    }

    /// Every message received so far, raw.
    func messages() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".eml") }.map {
            String(decoding: try Data(contentsOf: directory.appendingPathComponent($0)), as: UTF8.self)
        }
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite("Email is PHI-free")
struct MailTests {
    @Test("new leads, alerts and proposals reach a real SMTP server with no PHI canary in any message")
    func canaries() async throws {
        try await LiveServer.with { server in
            let sink = try SMTPSink()
            defer { sink.stop() }
            // A lead full of PHI canaries, through the real ingest path.
            let canaries = ["CANARY-NAME-Zq81", "+15559871234", "CANARY-TRANSCRIPT-hip-replacement", "CANARY-NOTE"]
            let call = """
                {"caller_number": "\(canaries[1])", "caller_name": "\(canaries[0])",
                 "started_at": "2026-11-29T10:00:00Z", "duration_seconds": 61,
                 "transcript": "\(canaries[2]) \(canaries[3])"}
                """
            #expect(try await server.signedCall(call, key: "canary-1").status == 201)
            // A break-glass opens: an alert for the owner.
            let responder = try await server.people.createUser(
                email: "responder@platform.test", displayName: "Rita", password: "responder password 1")
            _ = responder
            let operations = ComplianceOperations(maintenance: server.maintenance)
            try await operations.setResponder(email: "responder@platform.test", true)
            let fresh = try await server.identity.signInFresh(
                email: "responder@platform.test", password: "responder password 1")
            let compliance = ComplianceService(
                identity: server.identity, access: PracticeAccess(pool: server.identity.pool), keys: server.store)
            _ = try await compliance.openBreakGlass(
                fresh.token, practice: server.practice, reason: "on-call: practice reports missing calls", seconds: 600)

            let mailer = Mailer(
                maintenance: server.maintenance, transport: SMTPTransport(host: "127.0.0.1", port: sink.port),
                templates: try MailTemplates.load(), from: "enclave@platform.test",
                consoleURL: "https://enclave.platform.test")
            let summary = try await mailer.deliverDue()
            #expect(summary.failed == 0 && summary.retrying == 0)
            #expect(summary.sent >= 2)
            let messages = try sink.messages()
            #expect(messages.count == summary.sent)
            #expect(messages.contains { $0.contains("Subject: A new call for Bright Smile") })
            #expect(messages.contains { $0.contains("Subject: Access alert for Bright Smile") })
            #expect(messages.allSatisfy { $0.contains("X-Rcpt-To: owner@smile.test") })
            for message in messages {
                for canary in canaries + ["5559871234", "hip-replacement", "missing calls"] {
                    #expect(!message.contains(canary), "a message carries \(canary)")
                }
            }
            // Delivered once: a second pass sends nothing.
            #expect(try await mailer.deliverDue().sent == 0)
        }
    }

    @Test("off loopback, mail goes only over STARTTLS, with AUTH PLAIN inside TLS; a server without it is refused")
    func startTLS() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "enclave-smtp-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
            "1",
            "-keyout", key, "-out", cert, "-subj", "/CN=mail.test", "-addext", "subjectAltName=IP:127.0.0.2",
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        let message = MailMessage(
            from: "enclave@platform.test", to: "owner@smile.test", subject: "Hello", body: ".dot\nline")
        // 127.0.0.2 is not one of the loopback names the transport trusts: TLS is required.
        let tls = try SMTPSink(["--host", "127.0.0.2", "--tls", cert, key, "--auth", "mailer:s3cret"])
        defer { tls.stop() }
        try await SMTPTransport(
            host: "127.0.0.2", port: tls.port, username: "mailer", password: "s3cret", caFile: cert
        ).send(message)
        let received = try tls.messages()
        #expect(received.count == 1 && received[0].contains("Subject: Hello") && received[0].contains("\r\n.dot\r\n"))
        // Wrong credentials: refused (aiosmtpd stalls a failed AUTH, so the transport's own
        // timeout ends it; it never sends the message).
        await #expect(throws: SMTPError.self) {
            try await SMTPTransport(
                host: "127.0.0.2", port: tls.port, username: "mailer", password: "wrong", caFile: cert,
                timeout: .seconds(2)
            ).send(message)
        }
        // A certificate the transport does not trust: refused.
        await #expect(throws: (any Error).self) {
            try await SMTPTransport(host: "127.0.0.2", port: tls.port, username: "mailer", password: "s3cret").send(
                message)
        }
        // No STARTTLS off loopback: refused before anything is sent.
        let plain = try SMTPSink(["--host", "127.0.0.2"])
        defer { plain.stop() }
        await #expect(throws: SMTPError.self) {
            try await SMTPTransport(host: "127.0.0.2", port: plain.port).send(message)
        }
        #expect(try plain.messages().isEmpty)
        #expect(try tls.messages().count == 1)
    }

    @Test("a template may use only the whitelisted variables, checked when templates load")
    func templateWhitelist() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "enclave-templates-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "Subject: New lead for {{practice_name}}\n\nCaller: {{caller_name}}\n".write(
            to: directory.appendingPathComponent("lead.created.txt"), atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try MailTemplates.load(directory: directory.path) }
        try "Subject: New lead for {{practice_name}}\n\nSign in: {{ console_url }}\n".write(
            to: directory.appendingPathComponent("lead.created.txt"), atomically: true, encoding: .utf8)
        _ = try MailTemplates.load(directory: directory.path)
    }

    @Test("a server that is down leaves the notification pending for a retry, with no PHI in its error")
    func retry() async throws {
        try await LiveServer.with { server in
            #expect(
                try await server.signedCall(
                    #"{"caller_number": "+15550001111", "started_at": "2026-11-29T10:00:00Z"}"#, key: "retry-1"
                ).status == 201)
            let mailer = Mailer(
                maintenance: server.maintenance, transport: SMTPTransport(host: "127.0.0.1", port: 1),
                templates: try MailTemplates.load(), from: "enclave@platform.test",
                consoleURL: "https://enclave.platform.test")
            let summary = try await mailer.deliverDue()
            #expect(summary.retrying == 1)
            let connection = try await server.database.connect()
            defer { Task { await connection.close() } }
            let row = try #require(
                try await connection.query(
                    "select status, attempts, last_error from enclave.outbox where kind = 'notification'"
                ).first)
            #expect(try row.decode(String.self, "status") == "pending")
            #expect(try row.decode(Int32.self, "attempts") == 1)
        }
    }
}
