import Enclave
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@testable import EnclaveHTTP

/// Every request knows its client (issue 25): the peer's address, or behind a trusted proxy the
/// address it forwarded; the console's sign-ins are throttled and audited by it.
@Suite("The client's address: the peer, or what a trusted proxy forwarded")
struct ClientAddressTests {
    let proxies = ["10.0.0.0/8", "::1"].compactMap(EgressPolicy.Block.init)

    @Test("a peer that is not a trusted proxy is the client, whatever X-Forwarded-For says")
    func untrustedPeer() {
        #expect(
            RequestContextMiddleware.clientAddress(
                peer: "198.51.100.4", forwardedFor: ["203.0.113.9"], trusting: proxies)
                == "198.51.100.4")
        #expect(
            RequestContextMiddleware.clientAddress(peer: "198.51.100.4", forwardedFor: [], trusting: [])
                == "198.51.100.4")
        #expect(
            RequestContextMiddleware.clientAddress(peer: nil, forwardedFor: ["203.0.113.9"], trusting: proxies) == nil)
    }

    @Test("behind trusted proxies, the last forwarded address that is not a proxy; garbage keeps the peer")
    func trustedPeer() {
        func address(_ forwarded: [String]) -> String? {
            RequestContextMiddleware.clientAddress(peer: "10.0.0.1", forwardedFor: forwarded, trusting: proxies)
        }
        #expect(address(["203.0.113.9"]) == "203.0.113.9")
        // A client may send its own X-Forwarded-For: only the hops the proxies appended count.
        #expect(address(["192.0.2.66, 203.0.113.9, 10.1.2.3"]) == "203.0.113.9")
        #expect(address(["192.0.2.66", "203.0.113.9"]) == "203.0.113.9")
        #expect(address(["10.9.9.9"]) == "10.0.0.1")
        #expect(address([]) == "10.0.0.1")
        #expect(address(["not an address"]) == "10.0.0.1")
        #expect(
            RequestContextMiddleware.clientAddress(peer: "::1", forwardedFor: ["2001:db8::7"], trusting: proxies)
                == "2001:db8::7")
    }

    /// Signs in through the console's form, from `address` as the proxy says; returns the status.
    func consoleSignIn(_ server: LiveServer, email: String, password: String, from address: String) async throws -> Int
    {
        let page = try await server.request("GET", "/sign-in", headers: ["X-Forwarded-For": address])
        let csrf = try #require(page.body.firstMatch(of: /name="csrf" value="([^"]+)"/)?.1)
        let cookie = try #require(page.header("Set-Cookie")?.split(separator: ";").first)
        let form = "email=\(email)&password=\(password.replacingOccurrences(of: " ", with: "+"))&csrf=\(csrf)"
        return try await server.request(
            "POST", "/sign-in", headers: ["X-Forwarded-For": address, "Cookie": String(cookie)], body: Array(form.utf8),
            contentType: "application/x-www-form-urlencoded"
        ).status
    }

    @Test(
        "twenty failed console sign-ins from one address lock that address, not every console user; each is audited with it"
    )
    func consoleThrottlesPerAddress() async throws {
        try await LiveServer.with(trustedProxies: ["127.0.0.1"]) { server in
            for index in 0..<20 {
                let status = try await consoleSignIn(
                    server, email: "made-up\(index)@nowhere.test", password: "nope nope nope", from: "203.0.113.5")
                #expect(status == 401)
            }
            #expect(
                try await consoleSignIn(
                    server, email: "owner@smile.test", password: "owner password 12", from: "203.0.113.5")
                    == 429)
            #expect(
                try await consoleSignIn(
                    server, email: "owner@smile.test", password: "owner password 12", from: "203.0.113.6")
                    == 303)
            let superuser = try await server.database.connect()
            defer { Task { await superuser.close() } }
            let subjects = try await superuser.query(
                """
                select coalesce(host(client_ip), 'none') as address, count(*)::int8 as events from enclave.audit_events
                where action = 'auth.login_failed' group by 1 order by 1
                """
            ).map { "\(try $0.decode(String.self, "address")) \(try $0.decode(Int64.self, "events"))" }
            // The twenty guesses; the throttled attempt after them is refused before any hashing and
            // before the database records anything.
            #expect(subjects == ["203.0.113.5 20"])
        }
    }

    @Test("without a trusted proxy, X-Forwarded-For is ignored: the audit names the peer")
    func forwardedIgnored() async throws {
        try await LiveServer.with { server in
            let status = try await consoleSignIn(
                server, email: "made-up@nowhere.test", password: "nope nope nope", from: "203.0.113.5")
            #expect(status == 401)
            let superuser = try await server.database.connect()
            defer { Task { await superuser.close() } }
            let addresses = try await superuser.query(
                "select host(client_ip) as address from enclave.audit_events where action = 'auth.login_failed'"
            ).map { try $0.decode(String?.self, "address") }
            #expect(addresses == ["127.0.0.1"])
        }
    }
}

@Suite("Ids in paths")
struct PathIDTests {
    @Test("only the canonical 8-4-4-4-12 hexadecimal form is an id; anything else is a 400 naming the parameter")
    func canonicalUUIDs() throws {
        let id = UUID()
        #expect(try EnclaveAPI.uuid(id.uuidString, "practiceId") == id)
        #expect(try EnclaveAPI.uuid(id.uuidString.lowercased(), "practiceId") == id)
        for text in [
            "", "not-a-uuid", String(id.uuidString.dropLast()), id.uuidString + "0",
            id.uuidString.replacingOccurrences(of: "-", with: ""), "{\(id.uuidString)}",
            "g" + id.uuidString.dropFirst(), id.uuidString.replacingOccurrences(of: "-", with: "_"),
            "0000000-00000-0000-0000-000000000000",
        ] {
            #expect(throws: Problem.self, "\(text)") { try EnclaveAPI.uuid(text, "practiceId") }
        }
    }
}
