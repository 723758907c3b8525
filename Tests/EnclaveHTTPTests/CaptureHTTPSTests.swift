import EnclaveHTTPTestSupport
import Foundation
import Testing

@testable import EnclaveHTTP

/// The capture and value endpoints over HTTPS, through curl (their responses are checked against
/// the spec by scripts/check-openapi).
@Suite("Capture and lead value over HTTPS")
struct CaptureHTTPSTests {
    @Test("qualify, spend, the ROI report and the conversion export; the snippet; refusals of the capture endpoints")
    func valueAndCapture() async throws {
        try await LiveServer.with { server in
            let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
            let now = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-3_600))
            let stored = try await server.signedCall(
                #"{"caller_number": "+1 555 010 4242", "caller_name": "Pat Value", "started_at": "\#(now)", "attribution": {"source": "google", "gclid": "G-HTTP"}}"#,
                key: "value-1")
            #expect(stored.status == 201)
            let lead = try #require(stored.json["lead_id"] as? String)
            let practice = server.practice.uuidString.lowercased()
            let qualification = "/v1/practices/\(practice)/leads/\(lead)/qualification"
            #expect(
                try await server.request(
                    "PUT", qualification, token: token,
                    body: Array(#"{"qualification": "qualified", "value_cents": 120000}"#.utf8)
                ).status == 204)
            #expect(
                try await server.request(
                    "PUT", qualification, token: token, body: Array(#"{"qualification": "great"}"#.utf8)
                ).status == 400)
            let month = String(ISO8601DateFormatter().string(from: Date()).prefix(7))
            #expect(
                try await server.request(
                    "PUT", "/v1/practices/\(practice)/spend", token: token,
                    body: Array(#"{"month": "\#(month)", "source": "google", "amount_cents": 30000}"#.utf8)
                ).status == 204)

            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
            let tomorrow = calendar.startOfDay(for: Date()).addingTimeInterval(86_400)
            let range =
                "since=\(ISO8601DateFormatter().string(from: tomorrow.addingTimeInterval(-8 * 86_400)))&until=\(ISO8601DateFormatter().string(from: tomorrow))"
            let roi = try await server.request("GET", "/v1/practices/\(practice)/reports/roi?\(range)", token: token)
            #expect(roi.status == 200)
            let sources = roi.json["sources"] as? [[String: Any]] ?? []
            #expect(
                sources.contains { ($0["source"] as? String) == "google" && ($0["value_cents"] as? Int) == 120_000 })
            #expect(try await server.request("GET", "/v1/reports/roi?\(range)", token: token).status == 200)
            #expect(
                try await server.request(
                    "GET", "/v1/practices/\(practice)/reports/roi?since=yesterday&until=1", token: token
                )
                .status == 400)

            let csv = try await server.request(
                "GET", "/v1/practices/\(practice)/conversions?\(range)&format=csv&conversion_name=Booked", token: token)
            #expect(csv.status == 200 && csv.body.contains(#""G-HTTP","Booked","#) && csv.body.contains("1200.00,USD"))
            #expect(!csv.body.contains("Pat Value") && !csv.body.contains("4242"))
            let json = try await server.request("GET", "/v1/practices/\(practice)/conversions?\(range)", token: token)
            #expect(json.status == 200 && json.array.first?["gclid"] as? String == "G-HTTP")
            #expect(try await server.request("GET", "/v1/practices/\(practice)/conversions?\(range)").status == 401)

            let key = "pk_" + String(repeating: "a", count: 24)
            let snippet = try await server.request("GET", "/v1/capture/snippet/\(key).js")
            #expect(snippet.status == 200 && snippet.header("Cache-Control") == "public, max-age=300")
            #expect(snippet.body.contains("data-enclave-number"))
            #expect(try await server.request("GET", "/v1/capture/snippet/other.js").status == 404)
            let view = try await server.request(
                "POST", "/v1/capture/web/\(key)/views", headers: ["Origin": "https://www.smile.test"],
                body: Array(#"{"path": "/"}"#.utf8), contentType: "text/plain")
            #expect(view.status == 404 && view.header("Access-Control-Allow-Origin") == nil)
            let big = try await server.request(
                "POST", "/v1/capture/web/\(key)/forms", headers: ["Origin": "https://www.smile.test"],
                body: Array(
                    "{\"fields\": {\"message\": \"\(String(repeating: "x", count: 70_000))\"}, \"elapsed_ms\": 9000}"
                        .utf8),
                contentType: "text/plain")
            #expect(big.status == 413 && !big.body.contains("xxxx"))
            let voice = try await server.request(
                "POST", "/v1/capture/twilio/\(server.source.uuidString.lowercased())/voice",
                headers: ["X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"],
                body: Array(
                    "CallSid=CA\(String(repeating: "ab", count: 16))&AccountSid=AC\(String(repeating: "0", count: 32))"
                        .utf8),
                contentType: "application/x-www-form-urlencoded")
            #expect(voice.status == 403 && !voice.body.contains("CA"))
        }
    }

    @Test("set up over the API: a Twilio source, its pool, a web property; its page views get CORS for its origin only")
    func setUp() async throws {
        try await LiveServer.with { server in
            let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
            let practice = server.practice.uuidString.lowercased()
            let account = "AC" + String(repeating: "0123456789abcdef", count: 2)
            let created = try await server.request(
                "POST", "/v1/practices/\(practice)/sources/twilio", token: token,
                body: Array(
                    #"{"label": "Twilio line", "account_sid": "\#(account)", "auth_token": "0123456789abcdef0123", "forward_to": "+1 555 010 9999"}"#
                        .utf8))
            #expect(created.status == 201 && !created.body.contains("0123456789abcdef0123"))
            let source = try #require(created.json["id"] as? String)
            let numbers = try await server.request(
                "POST", "/v1/practices/\(practice)/sources/\(source)/numbers", token: token,
                body: Array(#"{"numbers": ["+1 555 020 7001", "+1 555 020 7002"]}"#.utf8))
            #expect(numbers.status == 200 && numbers.json["added"] as? Int == 2)
            #expect(
                try await server.request(
                    "POST", "/v1/practices/\(practice)/sources/\(source)/numbers", token: token,
                    body: Array(#"{"numbers": ["not a number"]}"#.utf8)
                ).status == 400)
            let property = try await server.request(
                "POST", "/v1/practices/\(practice)/web-properties", token: token,
                body: Array(
                    #"{"name": "Smile website", "origins": ["https://www.smile.test"], "call_source_id": "\#(source)", "main_number": "+1 555 010 9999"}"#
                        .utf8))
            #expect(property.status == 201)
            let key = try #require(property.json["public_key"] as? String)
            #expect((property.json["script"] as? String)?.contains("/v1/capture/snippet/\(key).js") == true)
            #expect(
                try await server.request(
                    "POST", "/v1/practices/\(practice)/web-properties", token: token,
                    body: Array(#"{"name": "Bad", "origins": ["https://www.smile.test/path"]}"#.utf8)
                ).status == 400)

            let view = try await server.request(
                "POST", "/v1/capture/web/\(key)/views", headers: ["Origin": "https://www.smile.test"],
                body: Array(#"{"path": "/implants", "params": {"utm_source": "google"}}"#.utf8),
                contentType: "text/plain")
            #expect(view.status == 200 && view.header("Access-Control-Allow-Origin") == "https://www.smile.test")
            #expect(["+15550207001", "+15550207002"].contains(view.json["number"] as? String ?? ""))
            let elsewhere = try await server.request(
                "POST", "/v1/capture/web/\(key)/views", headers: ["Origin": "https://evil.test"],
                body: Array(#"{"path": "/"}"#.utf8), contentType: "text/plain")
            #expect(elsewhere.status == 403 && elsewhere.header("Access-Control-Allow-Origin") == nil)
            let extra = try await server.request(
                "POST", "/v1/capture/web/\(key)/views", headers: ["Origin": "https://www.smile.test"],
                body: Array(#"{"path": "/", "params": {"patient": "Jane Canary"}}"#.utf8), contentType: "text/plain")
            #expect(extra.status == 200 && !extra.body.contains("Canary"))
        }
    }
}
