import Foundation

/// A lead as an authorized reader sees it: attribution in clear, PHI decrypted.
public struct Lead: Sendable, Equatable {
    public let id: UUID
    public let practiceID: UUID
    public let sourceID: UUID
    /// `call` or `form`.
    public let kind: String
    public let occurredAt: Date
    public let attribution: Attribution
    public let calledNumber: String?
    public let durationSeconds: Int?
    public let disposition: String?
    // PHI, decrypted for the reader; nil when absent or redacted.
    public let callerNumber: String?
    public let callerName: String?
    public let transcript: String?
    public let formFields: [String: String]?
    public let pageURL: String?
    /// The recording's size in bytes, if the call has one.
    public let recordingBytes: Int64?
    public let recordingContentType: String?
    public let redactedAt: Date?
    /// `qualified`, `unqualified` or `spam`, once marked; with its value in cents.
    public var qualification: String? = nil
    public var valueCents: Int64? = nil
    /// The transcript with names, numbers, dates, emails and addresses replaced by labels: what
    /// agency staff see (`transcript` is nil for them unless their agreement grants
    /// `transcripts.full`).
    public var redactedTranscript: String? = nil
    /// The transcript's tags, score and suggested qualification.
    public var insights: TranscriptInsights? = nil
    /// `done`, or `unreadable` (a recording the worker cannot decode); nil until the worker ran.
    public var transcriptStatus: String? = nil
}

/// Filters for listing leads.
public struct LeadFilter: Sendable, Equatable {
    public var since: Date?
    public var until: Date?
    public var kind: String?
    /// The tracking source that received the lead.
    public var sourceID: UUID?
    /// The attribution's source (google, facebook…) and campaign.
    public var source: String?
    public var campaign: String?
    /// Calls whose transcript mentions every word of this (a blind-index lookup; names and
    /// numbers are never found: only the redacted form is indexed).
    public var mentions: String?
    /// Calls tagged with this keyword set's name.
    public var tag: String?
    /// Where the previous page ended (`LeadPage.nextCursor`).
    public var cursor: String?
    /// 1 to 100.
    public var limit: Int

    public init(
        since: Date? = nil, until: Date? = nil, kind: String? = nil, sourceID: UUID? = nil, source: String? = nil,
        campaign: String? = nil, mentions: String? = nil, tag: String? = nil, cursor: String? = nil, limit: Int = 50
    ) {
        self.mentions = mentions
        self.tag = tag
        self.source = source
        self.since = since
        self.until = until
        self.kind = kind
        self.sourceID = sourceID
        self.campaign = campaign
        self.cursor = cursor
        self.limit = limit
    }
}

/// One page of leads, newest first.
public struct LeadPage: Sendable {
    public let leads: [Lead]
    /// Pass as `LeadFilter.cursor` for the next page; nil on the last page.
    public let nextCursor: String?
}

/// PHI fields a practice owner may redact.
public enum RedactableField: String, Sendable, CaseIterable, Codable {
    case callerNumber = "caller_number"
    case callerName = "caller_name"
    case transcript
    case formFields = "form_fields"
    case pageURL = "page_url"
    case recording
}
