import Foundation
import Postgres
import Sealing

/// A request a telephony provider posted to a capture URL, as it arrived.
public struct CaptureRequest: Sendable {
    public var sourceID: UUID
    /// Where the provider sent it, as the provider wrote it: the public base URL (scheme, host,
    /// port if any) then the path and query. The signature covers it.
    public var url: String
    /// The public base URL, for the callback URLs of the answer.
    public var baseURL: String
    public var signature: String
    public var body: [UInt8]
    public var context: RequestContext

    public init(
        sourceID: UUID, url: String, baseURL: String, signature: String, body: [UInt8],
        context: RequestContext = RequestContext()
    ) {
        self.sourceID = sourceID
        self.url = url
        self.baseURL = baseURL
        self.signature = signature
        self.body = body
        self.context = context
    }
}

/// Twilio-compatible voice capture: the incoming-call request and the status callbacks of a
/// source of provider `twilio`. Each request's `X-Twilio-Signature` is checked with the source's
/// auth token (its ingest secret) before anything is read from it; a call is stored once per
/// `CallSid` under the source's ingest credential, its caller's number and name sealed.
public struct TwilioCapture: Sendable {
    public let ingest: IngestService
    /// Hosts a recording callback's media URL may name (`MediaHosts`).
    public let mediaHosts: Set<String>

    public init(ingest: IngestService, mediaHosts: Set<String> = MediaHosts.default) {
        self.ingest = ingest
        self.mediaHosts = mediaHosts
    }

    /// A verified request: its source's settings, credential and parameters.
    struct Verified {
        let settings: Settings
        let credential: IngestService.Credential
        let form: FormBody
        let callKey: String
    }

    struct Settings {
        let account: String
        let forwardTo: String
        let announce: Bool
    }

    /// Stores the incoming call (once per CallSid) and answers TwiML that forwards it to the
    /// practice, recorded, with the recording and status callbacks.
    public func incomingCall(_ request: CaptureRequest) async throws -> (result: IngestResult, twiml: String) {
        let verified = try await verify(request)
        let form = verified.form
        let credential = verified.credential
        let caller = form["From"].flatMap { try? PhoneNumber.normalize($0) }
        let callerName = form["CallerName"].flatMap { $0.isEmpty ? nil : String($0.prefix(200)) }
        let called = form["To"].flatMap { try? PhoneNumber.normalize($0) }
        var lead = NewLead(kind: .call)
        lead.calledNumber = called
        lead.callerNumber = caller
        lead.callerName = callerName
        lead.idempotencyKey = verified.callKey
        // A pool number shown to a website visitor in the last 30 minutes: the call is theirs.
        let result = try await ingest.store(
            lead, replayID: nil, context: request.context, credential, visitor: called.map { .number($0) })
        let base = request.baseURL + "/v1/capture/twilio/\(request.sourceID.uuidString.lowercased())"
        return (
            result, TwiML.forward(to: verified.settings.forwardTo, announce: verified.settings.announce, base: base)
        )
    }

    /// Sets a stored call's duration and disposition from a status callback or the Dial verb's
    /// action; answers empty TwiML (which ends the call after a Dial).
    public func callStatus(_ request: CaptureRequest) async throws -> String {
        let verified = try await verify(request)
        let form = verified.form
        // The Dial's outcome is the forwarded leg's: whether the practice answered, and for how
        // long. The call's own status callback only fills what is missing: its "completed" means
        // the provider answered, not the practice.
        let dial = form["DialCallStatus"] != nil
        let disposition =
            dial
            ? form["DialCallStatus"].flatMap(Self.disposition)
            : form["CallStatus"].flatMap {
                $0 == "completed" ? nil : Self.disposition($0)
            }
        var duration: Int32?
        if let text = dial ? form["DialCallDuration"] : form["CallDuration"] {
            guard let seconds = Int32(text), (0...604_800).contains(seconds) else {
                throw AccessError(.invalidInput, "the call's duration is not a number of seconds")
            }
            duration = seconds
        }
        let lead = try await ingest.withCredential(verified.credential) { transaction in
            try await transaction.query(
                "select enclave_private.ingest_update_call($1, $2, $3, $4) as lead",
                [verified.callKey, duration, disposition, dial]
            ).first?.decode(UUID?.self, "lead")
        }
        guard lead != nil else { throw AccessError(.notFound, "no such call for this source") }
        return TwiML.empty
    }

    /// The provider's word that a call's recording is ready: queues its fetch (the recording
    /// worker downloads, seals, then deletes it at the provider). The media URL must be HTTPS and
    /// name this account's recording; other statuses (in progress, absent, failed) change nothing.
    public func recordingReady(_ request: CaptureRequest) async throws {
        let verified = try await verify(request)
        let form = verified.form
        guard (form["RecordingStatus"] ?? "completed") == "completed" else { return }
        guard let recording = form["RecordingSid"], recording.utf8.count == 34, recording.hasPrefix("RE"),
            recording.dropFirst(2).allSatisfy({ $0.isHexDigit && !$0.isUppercase })
        else { throw AccessError(.invalidInput, "RecordingSid is missing or is not a recording id") }
        guard let media = form["RecordingUrl"], media.utf8.count <= 500, let url = URL(string: media),
            url.scheme == "https", url.host != nil, url.query == nil,
            url.path == "/2010-04-01/Accounts/\(verified.settings.account)/Recordings/\(recording)"
        else { throw AccessError(.invalidInput, "RecordingUrl is not this account's recording over HTTPS") }
        guard MediaHosts.allows(url, in: mediaHosts) else {
            throw AccessError(.invalidInput, "RecordingUrl's host is not one recordings are fetched from")
        }
        let known = try await ingest.withCredential(verified.credential) { transaction in
            try await transaction.query(
                "select enclave_private.ingest_queue_recording($1, $2, $3) as known",
                [verified.callKey, recording, media]
            ).first?.decode(Bool.self, "known")
        }
        guard known == true else { throw AccessError(.notFound, "no such call for this source") }
    }

    /// A provider's call status as a disposition; nil for one that is not final.
    static func disposition(_ status: String) -> String? {
        switch status {
        case "completed", "answered": "answered"
        case "no-answer": "missed"
        case "busy": "busy"
        case "failed": "failed"
        case "canceled": "abandoned"
        default: nil
        }
    }

    /// Checks the source, the signature and the account, in that order; nothing is read from
    /// the parameters before the signature matches.
    func verify(_ request: CaptureRequest) async throws -> Verified {
        let refused = AccessError(.forbidden, "the request's X-Twilio-Signature does not match this source")
        let credential: IngestService.Credential
        do {
            credential = try await ingest.credential(request.sourceID)
        } catch let error as AccessError where error.code == .unauthenticated {
            throw refused
        }
        guard credential.provider == "twilio", let account = credential.providerAccount,
            let forwardTo = credential.forwardTo
        else { throw refused }
        let form = try FormBody(request.body)
        guard
            try TwilioSignature.matches(request.signature, url: request.url, form: form, authToken: credential.secret),
            form["AccountSid"] == account
        else { throw refused }
        guard let callSid = form["CallSid"], callSid.utf8.count == 34, callSid.hasPrefix("CA"),
            callSid.dropFirst(2).allSatisfy(\.isHexDigit)
        else { throw AccessError(.invalidInput, "CallSid is missing or is not a call id") }
        return Verified(
            settings: Settings(account: account, forwardTo: forwardTo, announce: credential.announceRecording),
            credential: credential, form: form, callKey: "twilio:" + callSid)
    }
}

/// The TwiML answers: built from fixed markup and escaped values only.
enum TwiML {
    static let empty = #"<?xml version="1.0" encoding="UTF-8"?><Response/>"#

    /// Forwards the call to `number`, recorded from answer in two channels; the recording's
    /// status goes to `base`/recording and the Dial's outcome to `base`/status.
    static func forward(to number: String, announce: Bool, base: String) -> String {
        var xml = #"<?xml version="1.0" encoding="UTF-8"?><Response>"#
        if announce { xml += "<Say>This call may be recorded.</Say>" }
        xml += #"<Dial record="record-from-answer-dual" action="\#(escape(base + "/status"))" method="POST""#
        xml += #" recordingStatusCallback="\#(escape(base + "/recording"))" recordingStatusCallbackMethod="POST""#
        xml += #" recordingStatusCallbackEvent="completed"><Number>\#(escape(number))</Number></Dial></Response>"#
        return xml
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&apos;")
    }
}
