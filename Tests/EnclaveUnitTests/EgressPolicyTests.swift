import Enclave
import Testing

@Suite("Egress control: where outbound requests may go")
struct EgressPolicyTests {
    @Test(
        "loopback, private, shared, link-local and metadata, multicast, unspecified, broadcast and reserved addresses are refused, also inside IPv6",
        arguments: [
            "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
            "169.254.169.254", "169.254.1.1", "224.0.0.1", "239.255.255.250", "0.0.0.0", "255.255.255.255",
            "240.0.0.1", "192.0.2.10", "::1", "::", "fe80::1", "fd00:ec2::254", "fc00::1", "ff02::1",
            "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "[::1]",
        ])
    func refused(address: String) throws {
        let parsed = try #require(EgressPolicy.IPAddress(address))
        #expect(EgressPolicy().refusal(for: parsed) != nil)
    }

    @Test("public addresses may be reached", arguments: ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "172.32.0.1"])
    func allowed(address: String) throws {
        #expect(EgressPolicy().refusal(for: try #require(EgressPolicy.IPAddress(address))) == nil)
    }

    @Test("the operator's allowlist admits what it names and nothing more")
    func allowlist() throws {
        let policy = try EgressPolicy.fromEnvironment([EgressPolicy.allowVariable: " 127.0.0.1/32, 10.0.0.0/8 ,::1"])
        #expect(policy.refusal(for: try #require(EgressPolicy.IPAddress("127.0.0.1"))) == nil)
        #expect(policy.refusal(for: try #require(EgressPolicy.IPAddress("10.200.1.1"))) == nil)
        #expect(policy.refusal(for: try #require(EgressPolicy.IPAddress("::1"))) == nil)
        #expect(policy.refusal(for: try #require(EgressPolicy.IPAddress("127.0.0.2"))) != nil)
        #expect(policy.refusal(for: try #require(EgressPolicy.IPAddress("169.254.169.254"))) != nil)
        #expect(throws: ConfigurationError.self) {
            try EgressPolicy.fromEnvironment([EgressPolicy.allowVariable: "10.0.0.0/33"])
        }
        #expect(throws: ConfigurationError.self) {
            try EgressPolicy.fromEnvironment([EgressPolicy.allowVariable: "internal.example"])
        }
        #expect(try EgressPolicy.fromEnvironment([:]).allowed.isEmpty)
    }

    @Test("a name is judged by the addresses it resolves to")
    func resolvedNames() async throws {
        await #expect(throws: EgressPolicy.Refusal.self) {
            try await EgressPolicy().destination(for: "localhost")
        }
        await #expect(throws: EgressPolicy.Refusal.self) {
            try await EgressPolicy().destination(for: "169.254.169.254")
        }
        await #expect(throws: EgressPolicy.Refusal.self) {
            try await EgressPolicy().destination(for: "no-such-host.invalid")
        }
        let allowed = try EgressPolicy.fromEnvironment([EgressPolicy.allowVariable: "127.0.0.0/8,::1"])
        let address = try await allowed.destination(for: "localhost")
        #expect(["127.0.0.1", "::1"].contains(address.description))
    }
}
