import Enclave
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import EnclaveHTTP

/// The owner of the fixture's practice, signed in with password and code over the API.
func ownerSession(_ server: LiveServer) async throws -> String {
    try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
}

@Suite("The API over real HTTPS")
struct HTTPSTests {
    @Test("health and readiness answer over TLS, with HSTS")
    func health() async throws {
        try await LiveServer.with { server in
            let health = try await server.request("GET", "/healthz")
            #expect(health.status == 200)
            #expect(health.body == "ok")
            #expect(health.headers.lowercased().contains("strict-transport-security: max-age="))
            #expect(try await server.request("GET", "/readyz").json["migrations"] as? Bool == true)
        }
    }

    @Test("a client that reconnects resumes its TLS 1.3 session instead of a full handshake")
    func sessionResumption() async throws {
        try await LiveServer.with { server in
            let session = "\(server.directory)/tls-session.pem"
            // openssl s_client as the client: the first connection keeps the session ticket the
            // server sends with its first response, the second offers it. Each waits for the
            // server to answer and close (Connection: close), however slow the machine.
            func connect(_ option: String) async throws -> String {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = [
                    "-c",
                    """
                    printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' \\
                        | openssl s_client -ign_eof -connect 127.0.0.1:\(server.port) -tls1_3 \(option) \(session)
                    """,
                ]
                return String(decoding: try await process.output(), as: UTF8.self)
            }
            let first = try await connect("-sess_out")
            #expect(first.contains("New, TLSv1.3") && first.contains("HTTP/1.1 200"))
            let second = try await connect("-sess_in")
            #expect(second.contains("Reused, TLSv1.3"), "the second connection did not resume its session")
            #expect(second.contains("HTTP/1.1 200"))
        }
    }

    @Test("a wrong password is a problem; a password alone opens no practice data; a code does")
    func signIn() async throws {
        try await LiveServer.with { server in
            let wrong = try await server.request(
                "POST", "/v1/auth/login",
                body: Array(#"{"email": "owner@smile.test", "password": "nope nope nope"}"#.utf8))
            #expect(wrong.status == 401)
            #expect(wrong.headers.lowercased().contains("content-type: application/problem+json"))
            #expect(wrong.json["type"] as? String == "https://enclave.dev/problems/invalid-credentials")

            let login = try await server.request(
                "POST", "/v1/auth/login",
                body: Array(#"{"email": "owner@smile.test", "password": "owner password 12"}"#.utf8))
            #expect(login.status == 200)
            let token = try #require(login.json["token"] as? String)
            let beforeMFA = try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: token)
            #expect(beforeMFA.status == 403)
            #expect(beforeMFA.json["type"] as? String == "https://enclave.dev/problems/mfa-required")
            let mfa = try await server.request(
                "POST", "/v1/auth/mfa", token: token, body: Array("{\"code\": \"\(try server.code(step: 0))\"}".utf8))
            #expect(mfa.status == 204, "\(mfa.body)")
            #expect(try await server.request("GET", "/v1/me", token: token).json["mfa_verified"] as? Bool == true)
        }
    }

    @Test("a signed call retried with its Idempotency-Key is one lead, read back decrypted and not cached")
    func signedIngestReadsBack() async throws {
        try await LiveServer.with { server in
            let token = try await ownerSession(server)
            let call =
                #"{"caller_number": "+1 555 867 5309", "caller_name": "Jane Patient", "started_at": "2026-11-29T10:00:00Z"}"#
            let created = try await server.signedCall(call, key: "abc-1")
            #expect(created.status == 201, "\(created.body)")
            let leadID = try #require(created.json["lead_id"] as? String)
            try await Task.sleep(for: .seconds(1))
            let retry = try await server.signedCall(call, key: "abc-1")
            #expect(retry.status == 200)
            #expect(retry.json["lead_id"] as? String == leadID)
            #expect(retry.json["created"] as? Bool == false)

            let list = try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: token)
            #expect(list.status == 200)
            #expect(list.headers.lowercased().contains("cache-control: no-store"))
            let leads = try #require(list.json["leads"] as? [[String: Any]])
            #expect(leads.count == 1)
            #expect(leads.first?["caller_name"] as? String == "Jane Patient")
            #expect(
                try await server.request("GET", "/v1/practices/\(server.practice)/leads/\(leadID)", token: token).status
                    == 200)
        }
    }

    @Test("bad input gets its documented 4xx problem, leaks nothing, and changes nothing")
    func badInput() async throws {
        try await LiveServer.with { server in
            let token = try await ownerSession(server)
            let call = #"{"caller_number": "+1 555 867 5309", "started_at": "2026-11-29T10:00:00Z"}"#
            let leadID = try #require(try await server.signedCall(call, key: "bad-input-1").json["lead_id"] as? String)
            // Another practice's lead: invisible under this practice, refused under its own.
            let other = try #require(try await Seeder(keys: server.keys).seed(practices: 1, leadsPerPractice: 1).first)
            let superuser = try await server.database.connect()
            defer { Task { await superuser.close() } }
            let theirs = try #require(
                try await superuser.query("select id from enclave.leads where tenant_id = $1", [other]).first?.decode(
                    UUID.self, "id"))
            let signed50MB = [UInt8](repeating: 0x20, count: 50 << 20)
            let cases: [(String, String, [UInt8]?, String, Int)] = [
                ("GET", "/v1/practices/\(server.practice)/leads/\(theirs)", nil, "", 404),
                ("GET", "/v1/practices/\(other)/leads/\(theirs)", nil, "", 403),
                ("POST", "/v1/ingest/calls", signed50MB, "application/json", 413),
                ("POST", "/v1/ingest/calls", Array("{}".utf8), "text/plain", 415),
                ("GET", "/v1/practices/%2e%2e/%2e%2e/leads", nil, "", 404),
                ("GET", "/v1/practices/\(server.practice)/leads/..%2f..%2f..%2fetc%2fpasswd", nil, "", 404),
                ("POST", "/v1/auth/login", Array(#"{"email": "#.utf8), "application/json", 400),
                (
                    "POST", "/v1/auth/login", Array(#"{"email": "a@b.c", "password": "x", "extra": 1}"#.utf8),
                    "application/json", 400
                ),
                ("POST", "/v1/auth/login", [UInt8](repeating: 65, count: 2_000_000), "application/json", 413),
                ("POST", "/v1/auth/login", Array("email=a".utf8), "application/x-www-form-urlencoded", 415),
                ("GET", "/v1/practices/\(server.practice)/leads/\(UUID().uuidString)", nil, "", 404),
                ("GET", "/v1/practices/\(UUID().uuidString)/leads/\(leadID)", nil, "", 403),
                ("GET", "/v1/practices/../../etc/passwd", nil, "", 404),
                ("GET", "/v1/practices/not-a-uuid/leads", nil, "", 400),
                // Ids are canonical UUIDs, nothing before or after (a NUL once slipped through).
                ("GET", "/v1/practices/\(server.practice)%00/leads", nil, "", 400),
                ("GET", "/v1/practices/\(server.practice)x/leads", nil, "", 400),
                ("GET", "/v1/practices/%20\(server.practice)/leads", nil, "", 400),
                ("GET", "/v1/practices/%7B\(server.practice)%7D/leads", nil, "", 400),
                (
                    "GET", "/v1/practices/\(server.practice.uuidString.replacingOccurrences(of: "-", with: ""))/leads",
                    nil, "", 400
                ),
                ("GET", "/v1/nowhere", nil, "", 404),
            ]
            for (method, path, body, type, status) in cases {
                let reply = try await server.request(
                    method, path, token: token,
                    headers: ["Enclave-Source": server.source.uuidString, "Enclave-Signature": "t=1,v1=00"], body: body,
                    contentType: type)
                #expect(reply.status == status, "\(method) \(path): \(reply.status) \(reply.body)")
                #expect(reply.headers.lowercased().contains("application/problem+json"), "\(method) \(path)")
                // No SQL, schema names, stack traces or input echoed back.
                for leak in [
                    "SQLSTATE", "enclave_private", "enclave.leads", "relation", "Fatal", "at /", "AAAA", "etc/passwd",
                ] {
                    #expect(!reply.body.contains(leak), "\(method) \(path) leaked \(leak): \(reply.body)")
                }
            }
            let after = try await server.request("GET", "/v1/practices/\(server.practice)/leads", token: token)
            #expect((after.json["leads"] as? [Any])?.count == 1)
        }
    }

    @Test("schema errors name the field, never its value; 405 says Allow; 401 says WWW-Authenticate")
    func protocolErrors() async throws {
        try await LiveServer.with { server in
            let token = try await ownerSession(server)
            let wrongMethod = try await server.request("DELETE", "/v1/me", token: token)
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("Allow") == "GET")
            // Dates with fractional seconds are read.
            #expect(
                try await server.request(
                    "GET", "/v1/practices/\(server.practice)/leads?since=2026-01-01T00:00:00.250Z", token: token
                ).status == 200)
            let unknownField = try await server.request(
                "POST", "/v1/auth/login", body: Array(#"{"email": "a@b.c", "password": "x", "extra": 1}"#.utf8))
            #expect(unknownField.json["detail"] as? String == "unknown field 'extra'")
            let mistyped = try await server.request(
                "POST", "/v1/auth/login", body: Array(#"{"email": "a@b.c", "password": 12345}"#.utf8))
            #expect(mistyped.json["detail"] as? String == "'password' has the wrong type")
            #expect(!mistyped.body.contains("12345"))
            let missing = try await server.request("POST", "/v1/auth/login", body: Array(#"{"email": "a@b.c"}"#.utf8))
            #expect(missing.json["detail"] as? String == "missing field 'password'")
            #expect(try await server.request("GET", "/v1/me").header("WWW-Authenticate") == "Bearer realm=\"enclave\"")
        }
    }

    @Test("a session idle past its timeout gets 401")
    func idleSession() async throws {
        try await LiveServer.with { server in
            let token = try await ownerSession(server)
            #expect(try await server.request("GET", "/v1/me", token: token).status == 200)
            let superuser = try await server.database.connect()
            try await superuser.query("update enclave.sessions set last_seen_at = now() - interval '16 minutes'")
            await superuser.close()
            let expired = try await server.request("GET", "/v1/me", token: token)
            #expect(expired.status == 401)
            #expect(expired.json["type"] as? String == "https://enclave.dev/problems/unauthenticated")
        }
    }
}
