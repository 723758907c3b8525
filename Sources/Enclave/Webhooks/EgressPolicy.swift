import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where outbound requests (webhook deliveries, and every later outbound fetch) may go.
///
/// A destination is checked on the address the request will connect to, after DNS resolution,
/// and the request is pinned to that address, so a name that resolves to a public address when
/// checked cannot resolve to a private one when connecting (DNS rebinding). Refused unless the
/// operator's allowlist (`ENCLAVE_EGRESS_ALLOW`, CIDR blocks or addresses separated by commas)
/// names them: loopback, private (RFC 1918, unique local), shared (CGNAT), link-local (which holds
/// the cloud metadata service, 169.254.169.254), multicast, unspecified, broadcast and reserved
/// addresses, and IPv6 forms that embed an IPv4 address (mapped, NAT64), judged by that address.
public struct EgressPolicy: Sendable, Equatable {
    /// The environment variable of the operator's allowlist.
    public static let allowVariable = "ENCLAVE_EGRESS_ALLOW"

    /// An address block, such as 10.0.0.0/8 or fd00::/8.
    public struct Block: Sendable, Equatable, CustomStringConvertible {
        let bytes: [UInt8]
        let prefix: Int

        /// Parses `a.b.c.d/n`, `x::y/n` or a bare address (a block of one).
        public init?(_ text: String) {
            let parts = text.trimmingCharacters(in: .whitespaces).split(
                separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let address = IPAddress(String(parts[0])) else { return nil }
            let bits = address.bytes.count * 8
            if parts.count == 2 {
                guard let prefix = Int(parts[1]), (0...bits).contains(prefix) else { return nil }
                self.prefix = prefix
            } else {
                prefix = bits
            }
            bytes = address.bytes
        }

        public func contains(_ address: IPAddress) -> Bool {
            guard address.bytes.count == bytes.count else { return false }
            var remaining = prefix
            for (index, byte) in bytes.enumerated() where remaining > 0 {
                let take = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
                if address.bytes[index] & mask != byte & mask { return false }
                remaining -= take
            }
            return true
        }

        public var description: String { "\(IPAddress(bytes: bytes))/\(prefix)" }
    }

    /// A resolved IPv4 (4 bytes) or IPv6 (16 bytes) address.
    public struct IPAddress: Sendable, Equatable, CustomStringConvertible {
        public let bytes: [UInt8]

        init(bytes: [UInt8]) { self.bytes = bytes }

        /// Parses a literal IPv4 or IPv6 address (brackets allowed around IPv6).
        public init?(_ text: String) {
            var literal = text
            if literal.hasPrefix("["), literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
            var v4 = in_addr()
            if inet_pton(AF_INET, literal, &v4) == 1 {
                bytes = withUnsafeBytes(of: &v4) { Array($0) }
                return
            }
            var v6 = in6_addr()
            if inet_pton(AF_INET6, literal, &v6) == 1 {
                bytes = withUnsafeBytes(of: &v6) { Array($0) }
                return
            }
            return nil
        }

        /// The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64 well-known prefix), if any.
        var embeddedIPv4: IPAddress? {
            guard bytes.count == 16 else { return nil }
            let mapped = Array(repeating: UInt8(0), count: 10) + [0xFF, 0xFF]
            let nat64: [UInt8] = [0x00, 0x64, 0xFF, 0x9B] + Array(repeating: 0, count: 8)
            if Array(bytes[0..<12]) == mapped || Array(bytes[0..<12]) == nat64 {
                return IPAddress(bytes: Array(bytes[12..<16]))
            }
            return nil
        }

        public var description: String {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            let family = bytes.count == 4 ? AF_INET : AF_INET6
            let ok = bytes.withUnsafeBytes { raw in
                inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
            }
            return ok ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        }
    }

    /// Why a destination is refused; names the kind of address, never a payload.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible, DescribedError {
        public let host: String
        public let reason: String

        public init(host: String, reason: String) {
            self.host = host
            self.reason = reason
        }

        public var description: String {
            "outbound request to \(host) refused: \(reason) (allow it in \(EgressPolicy.allowVariable) if intended)"
        }
        public var logDescription: String { description }
    }

    /// Blocks no request may reach unless allowed, with what they are.
    static let forbidden: [(Block, String)] = [
        ("0.0.0.0/8", "an unspecified address"), ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"), ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local or cloud metadata address"), ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved address"), ("192.0.2.0/24", "a documentation address"),
        ("192.168.0.0/16", "a private address"), ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"), ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"), ("240.0.0.0/4", "a reserved or broadcast address"),
        ("::/128", "an unspecified address"), ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local NAT64 address"), ("100::/64", "a discard address"),
        ("2001:db8::/32", "a documentation address"), ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"), ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ].compactMap { entry in Block(entry.0).map { ($0, entry.1) } }

    /// The operator's allowlist.
    public let allowed: [Block]

    public init(allowed: [Block] = []) {
        self.allowed = allowed
    }

    /// The policy from `ENCLAVE_EGRESS_ALLOW`.
    ///
    /// - Throws: `ConfigurationError` naming an entry that is not an address or CIDR block.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> EgressPolicy
    {
        let entries = (environment[allowVariable] ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        return EgressPolicy(
            allowed: try entries.map { entry in
                guard let block = Block(entry) else {
                    throw ConfigurationError("\(allowVariable): \"\(entry)\" is not an IP address or CIDR block")
                }
                return block
            })
    }

    /// Why `address` is refused, or nil when a request may go there.
    public func refusal(for address: IPAddress) -> String? {
        if allowed.contains(where: { $0.contains(address) }) { return nil }
        if let embedded = address.embeddedIPv4 { return refusal(for: embedded) }
        return Self.forbidden.first { $0.0.contains(address) }?.1
    }

    /// Resolves `host` and returns the first address a request may go to, to connect to it and
    /// nothing else.
    ///
    /// - Throws: `Refusal` when the name does not resolve or resolves only to refused addresses.
    public func destination(for host: String) async throws -> IPAddress {
        let addresses = try await Self.resolve(host)
        guard !addresses.isEmpty else { throw Refusal(host: host, reason: "the name does not resolve") }
        var reasons: [String] = []
        for address in addresses {
            guard let reason = refusal(for: address) else { return address }
            reasons.append(reason)
        }
        throw Refusal(host: host, reason: "it resolves to \(reasons[0])")
    }

    /// The addresses `host` resolves to (a literal is its own address). getaddrinfo blocks, so
    /// it runs off Swift's cooperative pool.
    static func resolve(_ host: String) async throws -> [IPAddress] {
        if let literal = IPAddress(host) { return [literal] }
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_family = AF_UNSPEC
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                guard getaddrinfo(host, nil, &hints, &list) == 0 else {
                    continuation.resume(returning: [])
                    return
                }
                defer { freeaddrinfo(list) }
                var addresses: [IPAddress] = []
                var cursor = list
                while let entry = cursor {
                    if let socket = entry.pointee.ai_addr {
                        if entry.pointee.ai_family == AF_INET {
                            var v4 = socket.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                            addresses.append(IPAddress(bytes: withUnsafeBytes(of: &v4) { Array($0) }))
                        } else if entry.pointee.ai_family == AF_INET6 {
                            var v6 = socket.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                                $0.pointee.sin6_addr
                            }
                            addresses.append(IPAddress(bytes: withUnsafeBytes(of: &v6) { Array($0) }))
                        }
                    }
                    cursor = entry.pointee.ai_next
                }
                continuation.resume(returning: addresses)
            }
        }
    }
}
