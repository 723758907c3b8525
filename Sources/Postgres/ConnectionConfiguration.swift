import CLibPQ
import Foundation

/// Where and how to connect, parsed from a `postgresql://` URL or a libpq conninfo string.
///
/// Transport policy: a connection over a Unix socket or to a loopback address may go without
/// TLS; any other host must use `sslmode=verify-full`. An absent `sslmode` for such a host
/// becomes `verify-full`; a weaker one is refused unless `allowInsecureTransport` is set.
public struct ConnectionConfiguration: Sendable, CustomStringConvertible {
    /// libpq connection keywords and values, in order.
    public private(set) var parameters: [(keyword: String, value: String)]
    /// Whether the operator explicitly allowed a weaker transport to a remote host.
    public let allowInsecureTransport: Bool

    /// Parses and checks `string` against the transport policy.
    ///
    /// - Throws: `PostgresError` with `.invalidConnectionString` (the message never contains
    ///   the password) or `.insecureConnection`.
    public init(_ string: String, allowInsecureTransport: Bool = false) throws {
        self.allowInsecureTransport = allowInsecureTransport
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(string, &errorMessage) else {
            var reason = "unrecognized format"
            if let errorMessage {
                reason = String(cString: errorMessage).trimmingCharacters(in: .whitespacesAndNewlines)
                PQfreemem(errorMessage)
            }
            reason = Self.redactingSecrets(of: string, from: reason)
            throw PostgresError(code: .invalidConnectionString, message: "invalid connection string: \(reason)")
        }
        defer { PQconninfoFree(options) }
        var parameters: [(keyword: String, value: String)] = []
        var cursor = options
        while let keyword = cursor.pointee.keyword {
            if let value = cursor.pointee.val {
                parameters.append((String(cString: keyword), String(cString: value)))
            }
            cursor += 1
        }
        self.parameters = parameters
        // libpq checks ports only when it dials; a typo should fail here, before any work.
        if let ports = value(for: "port"),
            !ports.split(separator: ",").allSatisfy({ UInt16($0) != nil && UInt16($0) != 0 })
        {
            throw PostgresError(
                code: .invalidConnectionString,
                message: "invalid connection string: the port is not a number from 1 to 65535")
        }
        try enforceTransportPolicy()
    }

    /// The value given for a libpq keyword, if any.
    public func value(for keyword: String) -> String? {
        parameters.last(where: { $0.keyword == keyword })?.value
    }

    /// Returns a copy with `keyword` set to `value`.
    public func setting(_ keyword: String, to value: String) -> ConnectionConfiguration {
        var copy = self
        copy.parameters.removeAll { $0.keyword == keyword }
        copy.parameters.append((keyword, value))
        return copy
    }

    /// The configuration with the password shown as `***`.
    public var description: String {
        parameters.map { $0.keyword == "password" ? "password=***" : "\($0.keyword)=\($0.value)" }
            .joined(separator: " ")
    }

    /// The password given in the string, for scrubbing it from messages.
    var password: String? { value(for: "password") }

    private mutating func enforceTransportPolicy() throws {
        let hosts = (value(for: "host") ?? environment("PGHOST") ?? "")
            .split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let hostAddresses = (value(for: "hostaddr") ?? environment("PGHOSTADDR") ?? "")
            .split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let count = max(hosts.count, hostAddresses.count)
        var remote: [String] = []
        for index in 0..<count {
            let host = index < hosts.count ? hosts[index] : ""
            let address = index < hostAddresses.count ? hostAddresses[index] : ""
            // libpq dials hostaddr when given; otherwise the host (a path means a Unix socket).
            let target = address.isEmpty ? host : address
            if !Self.isLocal(target) { remote.append(target) }
        }
        guard !remote.isEmpty else { return }
        let sslMode = value(for: "sslmode") ?? environment("PGSSLMODE")
        if sslMode == nil {
            parameters.append(("sslmode", "verify-full"))
            return
        }
        if sslMode == "verify-full" || allowInsecureTransport { return }
        throw PostgresError(
            code: .insecureConnection,
            message: "refusing sslmode=\(sslMode ?? "") to non-loopback host \(remote.joined(separator: ",")): "
                + "use sslmode=verify-full, or pass the explicit insecure-transport flag"
        )
    }

    /// True for a Unix socket path, the default socket (empty), or a loopback name or address.
    static func isLocal(_ host: String) -> Bool {
        if host.isEmpty || host.hasPrefix("/") || host.hasPrefix("@") { return true }
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        let octets = host.split(separator: ".")
        if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }), octets[0] == "127" { return true }
        return false
    }

    /// Removes anything that looks like the password in `string` from `message`.
    static func redactingSecrets(of string: String, from message: String) -> String {
        var candidates: [String] = []
        // URL form: scheme://user:secret@host
        if let schemeEnd = string.range(of: "://") {
            let rest = string[schemeEnd.upperBound...]
            if let at = rest.lastIndex(of: "@") {
                let userInfo = rest[..<at]
                if let colon = userInfo.firstIndex(of: ":") {
                    candidates.append(String(userInfo[userInfo.index(after: colon)...]))
                }
            }
        }
        // conninfo form and URL query form: password=secret
        for marker in ["password=", "password ="] {
            var search = string[...]
            while let range = search.range(of: marker) {
                var value = search[range.upperBound...].drop(while: { $0 == " " })
                if value.first == "'" { value = value.dropFirst() }
                let end = value.firstIndex(where: { $0 == " " || $0 == "&" || $0 == "'" }) ?? value.endIndex
                candidates.append(String(value[..<end]))
                search = value[end...]
            }
        }
        var result = message
        for candidate in candidates where !candidate.isEmpty {
            result = result.replacingOccurrences(of: candidate, with: "***")
            if let decoded = candidate.removingPercentEncoding, decoded != candidate, !decoded.isEmpty {
                result = result.replacingOccurrences(of: decoded, with: "***")
            }
        }
        return result
    }
}

private func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}
