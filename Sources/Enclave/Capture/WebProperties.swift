import Foundation
import Postgres
import Sealing

/// A practice's website, as the snippet knows it.
public struct WebProperty: Sendable, Equatable {
    public let id: UUID
    /// Goes in the snippet's URL: it names the property and opens nothing.
    public let publicKey: String
    public let origins: [String]
    public var name = ""
    public var callSource: UUID? = nil
    public var formSource: UUID? = nil
    public var mainNumber: String? = nil
}

extension TrackingSources {
    /// Adds numbers to a call source's pool (E.164; each unique across the platform).
    @discardableResult
    public func addNumbers(_ token: SessionToken, practice: UUID, source: UUID, numbers: [String]) async throws -> Int {
        guard (1...500).contains(numbers.count) else {
            throw AccessError(.invalidInput, "add 1 to 500 numbers at once")
        }
        let normalized = try numbers.map { number in
            guard let e164 = try? PhoneNumber.normalize(number) else {
                throw AccessError(.invalidInput, "a pool number is not a phone number")
            }
            return e164
        }
        return try await access.withPractice(token, practice: practice, scope: .trackingManage) { transaction in
            try await transaction.query(
                "select enclave_private.add_tracking_numbers($1, $2) as added", [source, normalized]
            ).first?.decode(Int.self, "added") ?? 0
        }
    }

    /// Creates the web property of a practice's site: the origins that may use its snippet
    /// (`https://host[:port]`, or `http://` on loopback), the call source whose pool it shows,
    /// the form source its forms go to, and the practice's own number the snippet replaces.
    public func createWebProperty(
        _ token: SessionToken, practice: UUID, name: String, origins: [String], callSource: UUID?, formSource: UUID?,
        mainNumber: String?
    ) async throws -> WebProperty {
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(name.count) else { throw AccessError(.invalidInput, "a name has 1 to 200 characters") }
        guard (1...20).contains(origins.count), origins.allSatisfy(Self.isOrigin) else {
            throw AccessError(.invalidInput, "origins are 1 to 20 of https://host[:port] (http:// on loopback only)")
        }
        let main = try mainNumber.map { number in
            guard let e164 = try? PhoneNumber.normalize(number) else {
                throw AccessError(.invalidInput, "the practice's number is not a phone number")
            }
            return e164
        }
        let key =
            "pk_"
            + Data(try SecureRandom.bytes(18)).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
        let id = try await access.withPractice(token, practice: practice, scope: .trackingManage) { transaction in
            try await transaction.query(
                "select enclave_private.create_web_property($1, $2, $3, $4, $5, $6) as id",
                [key, name, origins, callSource, formSource, main]
            ).first?.decode(UUID.self, "id")
        }
        guard let id else { throw AccessError(.conflict, "the web property could not be created") }
        return WebProperty(id: id, publicKey: key, origins: origins)
    }

    /// The practice's web properties.
    public func webProperties(_ token: SessionToken, practice: UUID) async throws -> [WebProperty] {
        try await access.withPractice(token, practice: practice, scope: .leadsRead) { transaction in
            try await transaction.query(
                """
                select id, name, public_key, origins, call_source_id, form_source_id, main_number
                from enclave_private.practice_web_properties()
                """
            ).map { row in
                WebProperty(
                    id: try row.decode(UUID.self, "id"), publicKey: try row.decode(String.self, "public_key"),
                    origins: try row.decode([String].self, "origins"), name: try row.decode(String.self, "name"),
                    callSource: try row.decode(UUID?.self, "call_source_id"),
                    formSource: try row.decode(UUID?.self, "form_source_id"),
                    mainNumber: try row.decode(String?.self, "main_number"))
            }
        }
    }

    /// The practice's pool numbers, by source.
    public func poolNumbers(_ token: SessionToken, practice: UUID) async throws -> [UUID: [String]] {
        try await access.withPractice(token, practice: practice, scope: .leadsRead) { transaction in
            var pools: [UUID: [String]] = [:]
            for row in try await transaction.query(
                "select number, source_id from enclave_private.practice_pool_numbers()")
            {
                pools[try row.decode(UUID.self, "source_id"), default: []].append(try row.decode(String.self, "number"))
            }
            return pools
        }
    }

    /// `scheme://host[:port]` exactly as a browser sends it in `Origin`.
    static func isOrigin(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme, let host = url.host, url.path.isEmpty,
            url.query == nil, url.fragment == nil, url.user == nil
        else { return false }
        let loopback = ["localhost", "127.0.0.1", "[::1]", "::1"].contains(host)
        return (scheme == "https" || (scheme == "http" && loopback))
            && text == "\(scheme)://\(host)"
                + (url.port.map { ":\($0)" } ?? "")
    }
}
