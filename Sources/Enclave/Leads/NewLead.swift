import Foundation
import Sealing

/// A lead as an ingest path describes it before it is stored: signed JSON, Twilio, a website
/// form or the seeder. Its PHI is in clear here, in this process only; `LeadWriter` seals each
/// field with the practice's active data key, bound to its row and column, and stores it.
public struct NewLead: Sendable {
    /// What the lead is.
    public enum Kind: String, Sendable {
        case call, form
    }

    public var id = UUID()
    public var kind: Kind
    /// When it happened; nil is the database's `now()`.
    public var occurredAt: Date?
    /// The marketing attribution; what it leaves out of source, medium and campaign comes from
    /// the source's defaults.
    public var attribution = Attribution()
    /// The tracking number that was called (not PHI).
    public var calledNumber: String?
    public var durationSeconds: Int32?
    public var disposition: String?
    /// E.164; also blind-indexed, for "all leads from this caller".
    public var callerNumber: String?
    public var callerName: String?
    public var transcript: String?
    public var formFields: [String: String]?
    public var pageURL: String?
    /// Makes a provider's retry safe: one lead per key and source.
    public var idempotencyKey: String?

    public init(kind: Kind) {
        self.kind = kind
    }
}

extension NewLead {
    /// The email address a lead's fields carry, for the blind index that finds a patient's
    /// leads: the field named email (or e-mail, email_address), else the first value that is one
    /// address. Nil when there is none.
    static func emailAddress(in fields: [String: String]?) -> String? {
        guard let fields else { return nil }
        let named = fields.filter {
            ["email", "e-mail", "email_address", "emailaddress"].contains($0.key.lowercased())
        }
        for (_, value) in named.sorted(by: { $0.key < $1.key }) {
            if let address = try? EmailAddress.normalize(value) { return address }
        }
        for (_, value) in fields.sorted(by: { $0.key < $1.key }) where value.contains("@") {
            if let address = try? EmailAddress.normalize(value) { return address }
        }
        return nil
    }
}
