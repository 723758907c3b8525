import AsyncHTTPClient
import Enclave
import EnclaveAPIClient
import EnclaveConsole
import EnclaveHTTP
import EnclaveTestSupport
import Foundation
import NIOSSL
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime
import Postgres
import Sealing

/// A live HTTPS server over a scratch database, with a practice, its owner (MFA enrolled) and a
/// call source; requests go through curl, trusting the server's self-signed certificate.
public struct LiveServer: Sendable {
    public let port: Int
    /// The metrics listener's port (plain HTTP, loopback).
    public let metricsPort: Int
    public let directory: String
    public let practice: UUID
    public let source: UUID
    public let secret: String
    public let totpSecret: String
    public let database: ScratchDatabase
    public let people: Directory
    public let identity: IdentityService
    public let maintenance: MaintenanceContext
    public let store: TenantKeyStore
    public let keys: KeyManagement
    /// The HTTP client behind `client(token:)`, trusting the server's certificate.
    let httpClient: HTTPClient

    public struct Reply: Sendable {
        public let status: Int
        public let headers: String
        public let data: Data
        public var body: String { String(decoding: data, as: UTF8.self) }
        public var json: [String: Any] {
            ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:]
        }
        public var array: [[String: Any]] {
            ((try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]]) ?? []
        }

        /// The value of the last `name` header (the final response's, after any 100 Continue).
        public func header(_ name: String) -> String? {
            headers.split(separator: "\r\n").last { $0.lowercased().hasPrefix(name.lowercased() + ":") }.map {
                String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces)
            }
        }
    }

    /// A server over a new database, with the console mounted; `trustedProxies` as
    /// `serve --trusted-proxy` takes them; `writeTimeout` for a client that stops reading.
    public static func with(
        trustedProxies: [String] = [], writeTimeout: Duration = .seconds(30),
        _ body: (LiveServer) async throws -> Void
    ) async throws {
        try await ScratchDatabase.migrated { database in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-https-\(UUID().uuidString)"
            ).path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let openssl = Process()
            openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            openssl.arguments = [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem", "-days", "1", "-subj",
                "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ]
            openssl.standardError = FileHandle.nullDevice
            try openssl.run()
            openssl.waitUntilExit()
            _ = try MasterKeyFile.create(path: "\(directory)/kek")
            let maint = ConnectionPool(
                configuration: try database.configuration("ENCLAVE_MAINT_DATABASE_URL"),
                options: .init(maxConnections: 2))
            let keys = try await KeyManagement.open(
                masterKeyFile: "\(directory)/kek", maintenance: MaintenanceContext(pool: maint))
            let services = try await EnclaveServices.open(
                database: try database.configuration("ENCLAVE_DATABASE_URL"),
                authDatabase: try database.configuration("ENCLAVE_AUTH_DATABASE_URL"),
                masterKeyFile: "\(directory)/kek",
                options: .init(connections: 4, identity: .init(passwordCost: .testing)))
            let app = services.pool
            let identity = services.identity
            let store = services.keys
            let practice = try await PracticeRegistry(keys: keys).create(name: "Bright Smile")
            let people = Directory(pool: maint, passwordCost: .testing)
            let owner = try await people.createUser(
                email: "owner@smile.test", displayName: "Olga", password: "owner password 12")
            try await people.grant(user: owner, role: .practiceOwner, practice: practice)
            let setup = try await identity.signInFresh(email: "owner@smile.test", password: "owner password 12")
            let (source, secret) = try await services.sources.create(
                setup.token, practice: practice, kind: "call", label: "Main line")
            let api = EnclaveAPI(services: services)
            let port = Locked<Int>(0)
            let server = try EnclaveServer.application(
                api: api,
                listen: .init(
                    host: "127.0.0.1", port: 0, tls: ("\(directory)/cert.pem", "\(directory)/key.pem"),
                    trustedProxies: trustedProxies.compactMap(EgressPolicy.Block.init), writeTimeout: writeTimeout),
                console: try await Console.load(services: services),
                onRunning: { bound in port.withLock { $0 = bound } })
            let metricsPort = Locked<Int>(0)
            let metricsServer = EnclaveServer.metricsApplication(
                api: api, host: "127.0.0.1", port: 0, onRunning: { bound in metricsPort.withLock { $0 = bound } })
            let running = Task { try await server.run() }
            let metricsRunning = Task { try await metricsServer.run() }
            defer { metricsRunning.cancel() }
            try await waitUntil("the server listens") { port.value != 0 && metricsPort.value != 0 }
            let httpClient = makeHTTPClient(trusting: "\(directory)/cert.pem")
            do {
                try await body(
                    LiveServer(
                        port: port.value, metricsPort: metricsPort.value, directory: directory, practice: practice,
                        source: source.id, secret: secret,
                        totpSecret: setup.totpSecret, database: database, people: people, identity: identity,
                        maintenance: keys.maintenance, store: store, keys: keys, httpClient: httpClient))
            } catch {
                try? await httpClient.shutdown()
                running.cancel()
                throw error
            }
            try await httpClient.shutdown()
            running.cancel()
            _ = try? await running.value
            await app.close()
            await maint.close()
        }
    }

    /// The metrics listener's exposition text (plain HTTP on loopback, never the API's port).
    public func metrics() async throws -> String {
        let response = try await httpClient.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/metrics"), timeout: .seconds(10))
        return String(buffer: try await response.body.collect(upTo: 16 << 20))
    }

    /// One request through curl over HTTPS.
    public func request(
        _ method: String, _ path: String, token: String? = nil, headers: [String: String] = [:], body: [UInt8]? = nil,
        contentType: String = "application/json", extraArguments: [String] = []
    ) async throws -> Reply {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let bodyFile = "\(directory)/body-\(UUID().uuidString)"
        let headerFile = bodyFile + ".headers"
        var arguments = [
            "curl", "-sS", "--max-time", "30", "--path-as-is", "--cacert", "\(directory)/cert.pem", "-X", method, "-o",
            bodyFile, "-D",
            headerFile,
            "-w", "%{http_code}", "https://localhost:\(port)\(path)",
        ]
        arguments += extraArguments
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let body {
            let input = bodyFile + ".in"
            FileManager.default.createFile(atPath: input, contents: Data(body))
            arguments += ["-H", "Content-Type: \(contentType)", "--data-binary", "@\(input)"]
        }
        process.arguments = arguments
        let data = try await process.output()
        let reply = Reply(
            status: Int(String(decoding: data, as: UTF8.self)) ?? -1,
            headers: (try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? "",
            data: (try? Data(contentsOf: URL(fileURLWithPath: bodyFile))) ?? Data())
        Exchanges.record(method: method, path: path, reply: reply)
        return reply
    }

    /// A GET from a client that reads nothing for `seconds`, then reads what it can (through
    /// `enclavekit stall`): the bytes it got, headers included.
    public func stalledGet(_ path: String, token: String, seconds: Double) async throws -> Int {
        let process = Process()
        process.executableURL = TestEnvironment.python
        process.arguments = [
            "-m", "enclavekit", "stall", "https://localhost:\(port)\(path)", token, "\(directory)/cert.pem",
            "\(seconds)",
        ]
        let data = try await process.output()
        guard let received = Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw TestSetupError("enclavekit stall printed no count") }
        return received
    }

    /// Two GETs of `path` on one kept-alive connection (through `enclavekit keep-alive`), with
    /// `between` run after the first answer and before the second request: both statuses.
    public func keepAliveGets(_ path: String, token: String, between: () async throws -> Void) async throws -> (
        first: Int, second: Int
    ) {
        let gate = "\(directory)/keep-alive-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: gate, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = TestEnvironment.python
        process.arguments = [
            "-m", "enclavekit", "keep-alive", "https://localhost:\(port)\(path)", token, "\(directory)/cert.pem", gate,
        ]
        async let output = process.output()
        try await waitUntil(timeout: .seconds(30), "the first request of the kept-alive connection is answered") {
            FileManager.default.fileExists(atPath: "\(gate)/first")
        }
        try await between()
        FileManager.default.createFile(atPath: "\(gate)/go", contents: nil)
        let statuses = String(decoding: try await output, as: UTF8.self).split(separator: " ").compactMap {
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard statuses.count == 2 else { throw TestSetupError("enclavekit keep-alive printed no statuses") }
        return (statuses[0], statuses[1])
    }

    public func code(step offset: Int) throws -> String {
        try SignedInUser.code(secret: totpSecret, at: Date().addingTimeInterval(Double(offset * 30)))
    }

    /// Signs in with MFA and re-authenticates; returns a token that reaches PHI and may take
    /// sensitive actions for five minutes. A new user enrolls TOTP (the shared helper). The
    /// practice owner, enrolled already, verifies codes of later steps instead (replacing an
    /// authenticator needs a fresh session): two and three steps ahead, leaving the current and
    /// next codes (`code(step:)` 0 and 1) to the test.
    public func mfaSession(email: String, password: String) async throws -> String {
        guard email == "owner@smile.test" else {
            return try await identity.signInFresh(email: email, password: password).token.value
        }
        let login = try await identity.login(email: email, password: password)
        let verified = Date().addingTimeInterval(60)
        try await identity.verifyMFA(
            login.token, code: try SignedInUser.code(secret: totpSecret, at: verified), at: verified)
        let fresh = verified.addingTimeInterval(30)
        return try await identity.reauthenticate(
            login.token, password: password, code: try SignedInUser.code(secret: totpSecret, at: fresh), at: fresh
        ).value
    }

    /// A signed ingest request (call or form JSON, or a recording).
    public func signed(
        _ method: String, _ path: String, body: [UInt8], contentType: String = "application/json", key: String? = nil,
        secret: String? = nil, source: UUID? = nil
    ) async throws -> Reply {
        var headers = [
            "Enclave-Source": (source ?? self.source).uuidString,
            "Enclave-Signature": try IngestSignature.sign(
                body, secret: secret ?? self.secret, timestamp: Int64(Date().timeIntervalSince1970)),
        ]
        if let key { headers["Idempotency-Key"] = key }
        return try await request(method, path, headers: headers, body: body, contentType: contentType)
    }

    public func signedCall(_ json: String, key: String?) async throws -> Reply {
        let body = Array(json.utf8)
        var headers = [
            "Enclave-Source": source.uuidString,
            "Enclave-Signature": try IngestSignature.sign(
                body, secret: secret, timestamp: Int64(Date().timeIntervalSince1970)),
        ]
        if let key { headers["Idempotency-Key"] = key }
        return try await request("POST", "/v1/ingest/calls", headers: headers, body: body)
    }
}

/// Every exchange the tests see, appended to `$ENCLAVE_HTTP_EXCHANGES` (one JSON object per
/// line) for `scripts/check-openapi`, which checks each response against the spec.
enum Exchanges {
    static let lock = NSLock()

    static func record(method: String, path: String, reply: LiveServer.Reply) {
        guard let file = ProcessInfo.processInfo.environment["ENCLAVE_HTTP_EXCHANGES"], !file.isEmpty else { return }
        // The spec covers the API; the console's pages are checked in the browser.
        guard path.hasPrefix("/v1/") || path == "/healthz" || path == "/readyz" else { return }
        var headers: [String: String] = [:]
        for name in ["Content-Range", "Accept-Ranges", "Content-Length"] { headers[name] = reply.header(name) }
        let contentType = reply.header("Content-Type") ?? ""
        let textual = contentType.contains("json") || contentType.hasPrefix("text/")
        let entry: [String: Any] = [
            "method": method, "path": path, "status": reply.status, "content_type": contentType,
            "headers": headers,
            "body": textual ? reply.body : (reply.data.isEmpty ? "" : "<\(reply.data.count) bytes>"),
        ]
        guard var line = try? JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        lock.lock()
        defer { lock.unlock() }
        if !FileManager.default.fileExists(atPath: file) { FileManager.default.createFile(atPath: file, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: file) else { return }
        handle.seekToEndOfFile()
        handle.write(line)
        try? handle.close()
    }
}
