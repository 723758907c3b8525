import Foundation
import Sealing

/// Non-PHI marketing attribution, kept in clear for reports.
public struct Attribution: Sendable, Equatable, Codable {
    public var source: String?
    public var medium: String?
    public var campaign: String?
    public var keyword: String?
    public var landingPage: String?
    public var gclid: String?

    public init(
        source: String? = nil, medium: String? = nil, campaign: String? = nil, keyword: String? = nil,
        landingPage: String? = nil, gclid: String? = nil
    ) {
        self.source = source
        self.medium = medium
        self.campaign = campaign
        self.keyword = keyword
        self.landingPage = landingPage
        self.gclid = gclid
    }
}

/// A call as a telephony provider posts it.
public struct CallLeadInput: Sendable, Equatable {
    public var callerNumber: String
    public var callerName: String?
    public var calledNumber: String?
    public var startedAt: Date
    public var durationSeconds: Int?
    public var disposition: String?
    public var transcript: String?
    public var attribution: Attribution
}

/// A web form submission.
public struct FormLeadInput: Sendable, Equatable {
    public var fields: [String: String]
    public var pageURL: String?
    public var submittedAt: Date
    public var attribution: Attribution
}

/// Strict parsing of ingest bodies: unknown fields, wrong types, missing fields and values over
/// their limits are refused with a message that names the field (never its value).
enum LeadInputParser {
    static let maximumBody = 1 << 20
    static let maximumTranscript = 512 * 1024
    static let maximumFieldValue = 64 * 1024
    static let maximumFields = 100
    static let maximumAttribution = 500
    /// JSON `true` or `false`. Not `value is Bool`: on Linux an NSNumber 0 or 1 casts to Bool
    /// too, which refused a missed call's `"duration_seconds": 0`.
    static func isBoolean(_ number: NSNumber) -> Bool {
        type(of: number) == type(of: NSNumber(value: true))
    }

    static let dispositions: Set<String> = ["answered", "missed", "voicemail", "busy", "failed", "abandoned"]

    static func invalid(_ message: String) -> AccessError { AccessError(.invalidInput, message) }

    static func object(_ body: [UInt8]) throws -> [String: Any] {
        guard body.count <= maximumBody else { throw invalid("the body is larger than 1 MiB") }
        guard String(validating: body, as: UTF8.self) != nil else { throw invalid("the body is not valid UTF-8") }
        guard let value = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            throw invalid("the body is not valid JSON")
        }
        guard let object = value as? [String: Any] else { throw invalid("the body must be a JSON object") }
        return object
    }

    static func checkKeys(_ object: [String: Any], allowed: Set<String>, in place: String = "the body") throws {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw invalid("unknown field \"\(unknown.prefix(64))\" in \(place)")
        }
    }

    static func string(_ object: [String: Any], _ key: String, required: Bool = false, limit: Int) throws -> String? {
        guard let value = object[key], !(value is NSNull) else {
            if required { throw invalid("\"\(key)\" is required") }
            return nil
        }
        guard let text = value as? String else { throw invalid("\"\(key)\" must be a string") }
        guard text.utf8.count <= limit else { throw invalid("\"\(key)\" is longer than \(limit) bytes") }
        return text
    }

    static func date(_ object: [String: Any], _ key: String, required: Bool) throws -> Date? {
        guard let text = try string(object, key, required: required, limit: 64) else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text) { return date }
        throw invalid("\"\(key)\" must be an RFC 3339 timestamp such as 2026-11-29T13:00:00Z")
    }

    static func attribution(_ object: [String: Any]) throws -> Attribution {
        guard let value = object["attribution"], !(value is NSNull) else { return Attribution() }
        guard let fields = value as? [String: Any] else { throw invalid("\"attribution\" must be an object") }
        try checkKeys(
            fields, allowed: ["source", "medium", "campaign", "keyword", "landing_page", "gclid"], in: "attribution")
        return Attribution(
            source: try string(fields, "source", limit: maximumAttribution),
            medium: try string(fields, "medium", limit: maximumAttribution),
            campaign: try string(fields, "campaign", limit: maximumAttribution),
            keyword: try string(fields, "keyword", limit: maximumAttribution),
            landingPage: try string(fields, "landing_page", limit: maximumAttribution),
            gclid: try string(fields, "gclid", limit: maximumAttribution)
        )
    }

    static func call(_ body: [UInt8]) throws -> CallLeadInput {
        let object = try object(body)
        try checkKeys(
            object,
            allowed: [
                "caller_number", "caller_name", "called_number", "started_at", "duration_seconds", "disposition",
                "transcript", "attribution",
            ])
        let callerNumber = try string(object, "caller_number", required: true, limit: 64) ?? ""
        do {
            _ = try PhoneNumber.normalize(callerNumber)
        } catch {
            throw invalid("\"caller_number\" is not a phone number")
        }
        var duration: Int?
        if let value = object["duration_seconds"], !(value is NSNull) {
            guard let number = value as? NSNumber, !Self.isBoolean(number),
                number.doubleValue == number.doubleValue.rounded(),
                (0...Double(86_400 * 7)).contains(number.doubleValue)
            else { throw invalid("\"duration_seconds\" must be a whole number of seconds from 0 to 604800") }
            duration = Int(number.doubleValue)
        }
        let disposition = try string(object, "disposition", limit: 32)
        if let disposition, !dispositions.contains(disposition) {
            throw invalid("\"disposition\" must be one of \(dispositions.sorted().joined(separator: ", "))")
        }
        return CallLeadInput(
            callerNumber: callerNumber,
            callerName: try string(object, "caller_name", limit: 200),
            calledNumber: try string(object, "called_number", limit: 64),
            startedAt: try date(object, "started_at", required: true) ?? Date(),
            durationSeconds: duration,
            disposition: disposition,
            transcript: try string(object, "transcript", limit: maximumTranscript),
            attribution: try attribution(object)
        )
    }

    static func form(_ body: [UInt8]) throws -> FormLeadInput {
        let object = try object(body)
        try checkKeys(object, allowed: ["fields", "page_url", "submitted_at", "attribution"])
        guard let raw = object["fields"] else { throw invalid("\"fields\" is required") }
        guard let fields = raw as? [String: Any], !fields.isEmpty else {
            throw invalid("\"fields\" must be a non-empty object of strings")
        }
        guard fields.count <= maximumFields else { throw invalid("a form has at most \(maximumFields) fields") }
        var values: [String: String] = [:]
        for (key, value) in fields {
            guard (1...100).contains(key.utf8.count) else { throw invalid("a field name has 1 to 100 bytes") }
            guard let text = value as? String else {
                throw invalid("form field \"\(key.prefix(64))\" must be a string")
            }
            guard text.utf8.count <= maximumFieldValue else {
                throw invalid("form field \"\(key.prefix(64))\" is longer than \(maximumFieldValue) bytes")
            }
            values[key] = text
        }
        let pageURL = try string(object, "page_url", limit: 4096)
        if let pageURL, URL(string: pageURL)?.scheme == nil { throw invalid("\"page_url\" is not a URL") }
        return FormLeadInput(
            fields: values, pageURL: pageURL, submittedAt: try date(object, "submitted_at", required: false) ?? Date(),
            attribution: try attribution(object))
    }
}
