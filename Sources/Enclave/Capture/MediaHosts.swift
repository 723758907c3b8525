import Foundation

/// The hosts (`name` or `name:port`) a provider's recording media may come from. One setting,
/// `ENCLAVE_MEDIA_HOSTS` (comma-separated), read by `enclave serve` and by the recording worker:
/// the capture endpoint refuses a callback whose media URL names another host (nothing is
/// queued), and the worker never contacts one. Twilio's API host by default.
public enum MediaHosts {
    public static let `default`: Set<String> = ["api.twilio.com"]

    /// The hosts `ENCLAVE_MEDIA_HOSTS` names, or the default when it is unset or empty.
    ///
    /// - Throws: a `ConfigurationError` naming an entry that is not a host or host:port.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Set<String> {
        let entries = (environment["ENCLAVE_MEDIA_HOSTS"] ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }.filter { !$0.isEmpty }
        guard !entries.isEmpty else { return Self.default }
        let host = /[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?/
        for entry in entries where entry.wholeMatch(of: host) == nil {
            throw ConfigurationError("ENCLAVE_MEDIA_HOSTS: \(entry) is not a host name or host:port")
        }
        return Set(entries)
    }

    /// Whether `url`'s host (with its port, when it names one) is in `hosts`.
    public static func allows(_ url: URL, in hosts: Set<String>) -> Bool {
        guard let host = url.host?.lowercased() else { return false }
        return hosts.contains(url.port.map { "\(host):\($0)" } ?? host)
    }
}
