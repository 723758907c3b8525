import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// Twilio-compatible voice capture against PostgreSQL. The provider's own library checks the
/// signature and the TwiML in scripts/capture-test; here, what is stored and refused.
@Suite("Capture: Twilio voice")
struct TwilioCaptureTests {
    static let account = "AC" + String(repeating: "0123456789abcdef", count: 2)
    static let authToken = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    static let base = "https://enclave.test:8443"

    struct Fixture {
        let leads: LeadsFixture
        let source: UUID
        let capture: TwilioCapture

        /// A request to `action` with `parameters`, signed as Twilio signs it (or not).
        func request(_ action: String, _ parameters: [(String, String)], token: String = authToken, source: UUID? = nil)
            throws -> CaptureRequest
        {
            let source = source ?? self.source
            let url = "\(base)/v1/capture/twilio/\(source.uuidString.lowercased())/\(action)"
            let body = parameters.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
            let form = try FormBody(Array(body.utf8))
            let signature = try TwilioSignature.expected(url: url, form: form, authToken: token)
            return CaptureRequest(
                sourceID: source, url: url, baseURL: base, signature: signature, body: Array(body.utf8))
        }

        func escape(_ text: String) -> String {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
        }

        func leadCount() async throws -> Int { try await leads.leadCount() }
    }

    static func with(_ body: (Fixture) async throws -> Void) async throws {
        try await LeadsFixture.with { leads in
            let source = try await leads.base.services.sources.createTwilio(
                leads.base.ownerAToken, practice: leads.base.practiceA, label: "Twilio line",
                trackingNumber: "+1 555 000 2222",
                defaults: Attribution(source: "google", medium: "cpc", campaign: "implants"),
                twilio: TwilioSettings(
                    accountSID: account, authToken: authToken, forwardTo: "+1 (555) 010-9999", announceRecording: true))
            try await body(
                Fixture(
                    leads: leads, source: source.id,
                    capture: TwilioCapture(ingest: leads.ingest, mediaHosts: ["media.test"])))
        }
    }

    static func call(_ sid: String, from: String = "+15558675309") -> [(String, String)] {
        [
            ("AccountSid", account), ("ApiVersion", "2010-04-01"), ("CallSid", sid), ("CallStatus", "ringing"),
            ("Called", "+15550002222"), ("CallerName", "JANE CANARY"), ("Direction", "inbound"), ("From", from),
            ("To", "+15550002222"),
        ]
    }

    static let sid = "CA" + String(repeating: "ab", count: 16)

    @Test(
        "a signed incoming call is stored once per CallSid, sealed, and answered with TwiML that forwards and records")
    func incoming() async throws {
        try await Self.with { fixture in
            let before = try await fixture.leadCount()
            let (first, twiml) = try await fixture.capture.incomingCall(
                try fixture.request("voice", Self.call(Self.sid)))
            #expect(first.created)
            // Twilio retries a request it got no answer to: the same CallSid is the same lead.
            let (again, _) = try await fixture.capture.incomingCall(try fixture.request("voice", Self.call(Self.sid)))
            #expect(!again.created && again.leadID == first.leadID)
            #expect(try await fixture.leadCount() == before + 1)
            #expect(twiml.contains(#"<Dial record="record-from-answer-dual""#))
            #expect(twiml.contains("<Number>+15550109999</Number>"))
            #expect(twiml.contains("<Say>This call may be recorded.</Say>"))
            let callbacks = "\(Self.base)/v1/capture/twilio/\(fixture.source.uuidString.lowercased())"
            #expect(twiml.contains(#"recordingStatusCallback="\#(callbacks)/recording""#))
            #expect(twiml.contains(#"action="\#(callbacks)/status""#))

            let lead = try await fixture.leads.leads.get(
                fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, lead: first.leadID)
            #expect(lead.callerNumber == "+15558675309" && lead.callerName == "JANE CANARY")
            #expect(lead.attribution.source == "google" && lead.kind == "call")
            #expect(lead.calledNumber == "+15550002222")
            // Sealed: the caller's name is nowhere in clear.
            let connection = try await fixture.leads.base.keys.database.connect()
            let clear = try await connection.query(
                "select count(*)::int8 as n from enclave.leads where position(convert_to('CANARY', 'UTF8') in caller_name) > 0"
            )
            await connection.close()
            #expect(try clear.first?.decode(Int.self, "n") == 0)
        }
    }

    @Test(
        "a tampered parameter, another token, another account, another URL, or a source of another provider: 403, nothing stored"
    )
    func refused() async throws {
        try await Self.with { fixture in
            let before = try await fixture.leadCount()
            var tampered = try fixture.request("voice", Self.call(Self.sid))
            tampered.body = Array(
                String(decoding: tampered.body, as: UTF8.self)
                    .replacingOccurrences(of: "8675309", with: "8675310").utf8)
            var moved = try fixture.request("voice", Self.call(Self.sid))
            moved.url = moved.url.replacingOccurrences(of: ":8443", with: ":9443")
            var otherAccount = Self.call(Self.sid)
            otherAccount[0].1 = "AC" + String(repeating: "f", count: 32)
            let attempts = [
                tampered, moved,
                try fixture.request("voice", Self.call(Self.sid), token: "another auth token 0123456789"),
                try fixture.request("voice", otherAccount),
                // The signed JSON source of the same practice, signed with its own secret.
                try fixture.request(
                    "voice", Self.call(Self.sid), token: fixture.leads.secret, source: fixture.leads.source),
                try fixture.request("voice", Self.call(Self.sid), source: UUID()),
            ]
            for attempt in attempts {
                await #expect(
                    throws: AccessError(.forbidden, "the request's X-Twilio-Signature does not match this source")
                ) {
                    try await fixture.capture.incomingCall(attempt)
                }
            }
            #expect(try await fixture.leadCount() == before)
        }
    }

    @Test(
        "the Dial's outcome sets duration and disposition; the call's own 'completed' does not make a missed call answered"
    )
    func status() async throws {
        try await Self.with { fixture in
            let (missed, _) = try await fixture.capture.incomingCall(try fixture.request("voice", Self.call(Self.sid)))
            var dial = Self.call(Self.sid)
            dial += [("DialCallStatus", "no-answer"), ("DialCallDuration", "0")]
            #expect(try await fixture.capture.callStatus(try fixture.request("status", dial)).contains("<Response/>"))
            var final = Self.call(Self.sid)
            final[3].1 = "completed"
            final.append(("CallDuration", "31"))
            _ = try await fixture.capture.callStatus(try fixture.request("status", final))
            let read = { (lead: UUID) in
                try await fixture.leads.leads.get(
                    fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, lead: lead)
            }
            let first = try await read(missed.leadID)
            #expect(first.disposition == "missed" && first.durationSeconds == 0)

            let other = "CA" + String(repeating: "cd", count: 16)
            let (answered, _) = try await fixture.capture.incomingCall(try fixture.request("voice", Self.call(other)))
            _ = try await fixture.capture.callStatus(
                try fixture.request(
                    "status", Self.call(other) + [("DialCallStatus", "completed"), ("DialCallDuration", "95")]))
            let second = try await read(answered.leadID)
            #expect(second.disposition == "answered" && second.durationSeconds == 95)

            // A status for a call Enclave never stored changes nothing.
            await #expect(throws: AccessError(.notFound, "no such call for this source")) {
                try await fixture.capture.callStatus(
                    try fixture.request("status", Self.call("CA" + String(repeating: "ef", count: 16))))
            }
        }
    }

    @Test("a Twilio source's secret is its auth token: rotating it to a generated secret is refused")
    func noRotation() async throws {
        try await Self.with { fixture in
            await #expect(
                throws: AccessError(
                    .invalidInput, "a Twilio source's secret is the account's auth token, set at Twilio")
            ) {
                try await fixture.leads.base.services.sources.rotateSecret(
                    fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, source: fixture.source)
            }
        }
    }
}
