import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite("enclave serve and enclave webhooks, run as processes")
struct ServeCommandTests {
    /// Starts `enclave arguments…`, waits for a line containing `ready`, returns the process
    /// and that line. Output goes to a file, read without blocking a cooperative thread.
    func start(_ arguments: [String], environment: [String: String?], ready: String) async throws
        -> (Process, String, String)
    {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-serve-\(UUID())").path
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = CLIProcess.executable
        process.arguments = arguments
        process.currentDirectoryURL = TestEnvironment.packageRoot
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        var line = ""
        try await waitUntil(timeout: .seconds(60), "\(arguments.first ?? "") is ready") {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            line = text.split(separator: "\n").first { $0.contains(ready) }.map(String.init) ?? ""
            return !line.isEmpty || !process.isRunning
        }
        return (process, line, log)
    }

    /// Waits for `process` to exit, off the cooperative pool; nil if it did not within `seconds`.
    func exitStatus(_ process: Process, within seconds: Double) async -> Int32? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let deadline = Date().addingTimeInterval(seconds)
                while process.isRunning && Date() < deadline { usleep(20_000) }
                continuation.resume(returning: process.isRunning ? nil : process.terminationStatus)
            }
        }
    }

    @Test("serve answers, then shuts down gracefully on SIGTERM; plain HTTP off loopback is refused")
    func gracefulShutdown() async throws {
        try await ScratchDatabase.migrated { database in
            let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-kek-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: keyFile) }
            let maint: [String: String?] = [
                "ENCLAVE_MAINT_DATABASE_URL": try database.url("ENCLAVE_MAINT_DATABASE_URL"),
                "ENCLAVE_MASTER_KEY_FILE": keyFile,
            ]
            #expect(try await CLIProcess.run(["keys", "init"], environment: maint).status == 0)
            #expect(try await CLIProcess.run(["keys", "status"], environment: maint).status == 0)
            let app: [String: String?] = [
                "ENCLAVE_DATABASE_URL": try database.url("ENCLAVE_DATABASE_URL"), "ENCLAVE_MASTER_KEY_FILE": keyFile,
                "ENCLAVE_MAINT_DATABASE_URL": nil,
            ]

            let refused = try await CLIProcess.run(
                ["serve", "--insecure-http", "--host", "0.0.0.0", "--port", "0", "--metrics-port", "0"],
                environment: app)
            #expect(refused.status != 0)
            #expect(refused.standardError.contains("loopback"))

            let (server, line, log) = try await start(
                ["serve", "--insecure-http", "--port", "0", "--metrics-port", "0"], environment: app,
                ready: "serving on")
            defer { try? FileManager.default.removeItem(atPath: log) }
            let port = try #require(line.split(separator: ":").last.flatMap { Int($0) }, "\(line)")
            let (data, response) = try await URLSession.shared.data(
                from: try #require(URL(string: "http://127.0.0.1:\(port)/readyz")))
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            #expect(String(decoding: data, as: UTF8.self).contains("true"))
            var login = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/v1/auth/login")))
            login.httpMethod = "POST"
            login.setValue("application/json", forHTTPHeaderField: "Content-Type")
            login.httpBody = Data(#"{"email": "jane.patient@example.test", "password": "correct horse battery"}"#.utf8)
            let (_, refused401) = try await URLSession.shared.data(for: login)
            #expect((refused401 as? HTTPURLResponse)?.statusCode == 401)
            server.terminate()  // SIGTERM
            #expect(await exitStatus(server, within: 20) == 0)
            // The access log has the route and status, never the body, the email or the password.
            let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(logged.contains("route=/v1/auth/login"), "\(logged)")
            #expect(logged.contains("status=401"))
            for secret in ["jane.patient", "correct horse", "example.test"] {
                #expect(!logged.contains(secret), "the log holds \(secret)")
            }

            // The webhook worker runs as a service too, and stops on SIGTERM.
            let (worker, _, workerLog) = try await start(
                ["webhooks", "deliver", "--interval", "0.2"], environment: maint, ready: "webhooks: delivering")
            defer { try? FileManager.default.removeItem(atPath: workerLog) }
            #expect(worker.isRunning, "\((try? String(contentsOfFile: workerLog, encoding: .utf8)) ?? "")")
            worker.terminate()
            #expect(await exitStatus(worker, within: 20) == 0)
        }
    }
}
