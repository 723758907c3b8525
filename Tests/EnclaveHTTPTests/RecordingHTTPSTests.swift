import Enclave
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import EnclaveHTTP

@Suite("Recordings over HTTPS")
struct RecordingHTTPSTests {
    @Test("a signed call with a streamed recording is readable and playable, whole and by range; metrics count it")
    func recordingRoundTrip() async throws {
        try await LiveServer.with { server in
            let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
            let call = try await server.signedCall(
                #"{"caller_number": "+1 555 010 2222", "started_at": "2026-11-29T11:00:00Z", "duration_seconds": 7}"#,
                key: "rec-1")
            let lead = try #require(call.json["lead_id"] as? String)
            let audio = SyntheticAudio.wave(seconds: 7, rate: 16_000)  // about 220 KB: four sealed chunks

            #expect(
                try await server.request(
                    "GET", "/v1/practices/\(server.practice)/leads/\(lead)/recording", token: token
                ).status == 404, "no recording yet")
            let wrongType = try await server.signed(
                "PUT", "/v1/ingest/calls/\(lead)/recording", body: audio, contentType: "text/plain")
            #expect(wrongType.status == 415)
            let forged = try await server.signed(
                "PUT", "/v1/ingest/calls/\(lead)/recording", body: audio, contentType: "audio/wav", secret: "wrong")
            #expect(forged.status == 401)
            let unknown = try await server.signed(
                "PUT", "/v1/ingest/calls/\(UUID())/recording", body: audio, contentType: "audio/wav")
            #expect(unknown.status == 404)

            let upload = try await server.signed(
                "PUT", "/v1/ingest/calls/\(lead)/recording", body: audio, contentType: "audio/wav")
            #expect(upload.status == 201, "\(upload.body)")
            #expect(upload.json["bytes"] as? Int == audio.count)
            let again = try await server.signed(
                "PUT", "/v1/ingest/calls/\(lead)/recording", body: Array(audio.prefix(1000)), contentType: "audio/wav")
            #expect(again.status == 409)

            let whole = try await server.request(
                "GET", "/v1/practices/\(server.practice)/leads/\(lead)/recording", token: token)
            #expect(whole.status == 200)
            #expect(whole.header("Content-Type") == "audio/wav")
            #expect(whole.header("Content-Length") == "\(audio.count)")
            #expect(whole.header("Accept-Ranges") == "bytes")
            #expect(whole.header("Cache-Control") == "no-store")
            #expect(Array(whole.data) == audio)
            #expect(Array(whole.data.prefix(4)) == Array("RIFF".utf8))

            let part = try await server.request(
                "GET", "/v1/practices/\(server.practice)/leads/\(lead)/recording", token: token,
                headers: ["Range": "bytes=65000-140000"])
            #expect(part.status == 206)
            #expect(part.header("Content-Range") == "bytes 65000-140000/\(audio.count)")
            #expect(Array(part.data) == Array(audio[65000...140000]))
            let tail = try await server.request(
                "GET", "/v1/practices/\(server.practice)/leads/\(lead)/recording", token: token,
                headers: ["Range": "bytes=-100"])
            #expect(Array(tail.data) == Array(audio.suffix(100)))
            let outside = try await server.request(
                "GET", "/v1/practices/\(server.practice)/leads/\(lead)/recording", token: token,
                headers: ["Range": "bytes=\(audio.count)-"])
            #expect(outside.status == 416)
            #expect(outside.header("Content-Range") == "bytes */\(audio.count)")

            // Each play is in the trail.
            let plays = try await server.request(
                "GET", "/v1/practices/\(server.practice)/audit?action=recording.played", token: token)
            #expect(plays.array.count == 3)

            let metrics = try await server.metrics()
            #expect(metrics.contains("enclave_http_requests_total{operation=\""))
            #expect(metrics.contains("recording\",method=\"GET\",status=\"206\"} 2"))
            #expect(metrics.contains("enclave_http_request_duration_seconds_bucket{operation=\""))
            #expect(metrics.contains("enclave_db_pool_max_connections 4"))
            #expect(metrics.contains("\nenclave_audit_write_failures_total "))
            #expect(!metrics.contains(lead), "ids never become labels")
            // Metrics are not served on the public API's port.
            #expect(try await server.request("GET", "/metrics").status == 404)
        }
    }

    @Test("a client that goes away mid-download releases its database connection; the play stays audited")
    func abandonedDownload() async throws {
        try await LiveServer.with { server in
            let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
            let call = try await server.signedCall(
                #"{"caller_number": "+1 555 010 3333", "started_at": "2026-11-29T11:30:00Z"}"#, key: "long-1")
            let lead = try #require(call.json["lead_id"] as? String)
            // 8 MB: far more than the socket buffers hold, so the sender really waits on the client.
            let audio = SyntheticAudio.wave(seconds: 250, rate: 16_000)
            let upload = try await server.signed(
                "PUT", "/v1/ingest/calls/\(lead)/recording", body: audio, contentType: "audio/wav")
            #expect(upload.status == 201, "\(upload.body)")

            // A slow client that gives up after a second.
            let aborted = try await server.request(
                "GET", "/v1/practices/\(server.practice)/leads/\(lead)/recording", token: token,
                extraArguments: ["--limit-rate", "64K", "--max-time", "1"])
            #expect(aborted.data.count < audio.count)

            try await waitUntil(timeout: .seconds(30), "the download's connection returns to the pool") {
                try await server.metrics().contains("enclave_db_pool_connections{state=\"in_use\"} 0")
            }
            let plays = try await server.request(
                "GET", "/v1/practices/\(server.practice)/audit?action=recording.played", token: token)
            #expect(plays.array.count == 1)
            // And the service still answers.
            let whole = try await server.request(
                "GET", "/v1/practices/\(server.practice)/leads/\(lead)/recording", token: token,
                headers: ["Range": "bytes=0-99"])
            #expect(Array(whole.data) == Array(audio.prefix(100)))
        }
    }

    @Test(
        "slow readers hold no database connection; a user plays four at once; slow and stalled readers are cut off"
    )
    func slowReaders() async throws {
        try await LiveServer.with(writeTimeout: .seconds(6)) { server in
            let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
            let call = try await server.signedCall(
                #"{"caller_number": "+1 555 010 3434", "started_at": "2026-11-29T11:30:00Z"}"#, key: "stall-1")
            let lead = try #require(call.json["lead_id"] as? String)
            // 16 MB: far more than the socket buffers hold, so each stream really waits on its client.
            let audio = SyntheticAudio.wave(seconds: 500, rate: 16_000)
            let upload = try await server.signed(
                "PUT", "/v1/ingest/calls/\(lead)/recording", body: audio, contentType: "audio/wav")
            #expect(upload.status == 201, "\(upload.body)")
            let path = "/v1/practices/\(server.practice)/leads/\(lead)/recording"
            // Four readers (the pool has four connections) that take 1 KB a second.
            let readers = (0..<4).map { _ in
                Task {
                    try await server.request(
                        "GET", path, token: token, extraArguments: ["--limit-rate", "1K", "--max-time", "30"])
                }
            }
            try await waitUntil(timeout: .seconds(10), "the four streams are open") {
                try await server.request(
                    "GET", "/v1/practices/\(server.practice)/audit?action=recording.played", token: token
                ).array.count == 4
            }
            // While they crawl (once the socket buffers are full), no connection is held and
            // everyone else is served.
            try await waitUntil(timeout: .seconds(3), "no connection is held while the readers crawl") {
                try await server.metrics().contains("enclave_db_pool_connections{state=\"in_use\"} 0")
            }
            #expect(try await server.request("GET", "/v1/me", token: token).status == 200)
            // A fifth stream of the same user waits its turn...
            let fifth = try await server.request("GET", path, token: token, headers: ["Range": "bytes=0-99"])
            #expect(fifth.status == 429 && fifth.header("Retry-After") != nil, "\(fifth.status)")
            // ...until the write timeout ends the crawling streams and gives their slots back.
            try await waitUntil(timeout: .seconds(12), "a slow stream gives its slot back") {
                try await server.request("GET", path, token: token, headers: ["Range": "bytes=0-99"]).status == 206
            }
            // A client that reads nothing at all has its connection closed: after its stall it
            // gets what the socket buffers held, not the recording.
            let stalled = try await server.stalledGet(path, token: token, seconds: 10)
            #expect(stalled < audio.count, "the stalled reader got \(stalled) of \(audio.count) bytes")
            for reader in readers { #expect(try await reader.value.data.count < audio.count) }
            try await waitUntil(timeout: .seconds(10), "every connection is back in the pool") {
                try await server.metrics().contains("enclave_db_pool_connections{state=\"in_use\"} 0")
            }
        }
    }

    @Test("range headers resolve as RFC 9110 says")
    func ranges() {
        #expect(ByteRange.resolve(nil, total: 100) == .whole)
        #expect(ByteRange.resolve("bytes=0-9", total: 100) == .part(0...9))
        #expect(ByteRange.resolve("bytes=90-", total: 100) == .part(90...99))
        #expect(ByteRange.resolve("bytes=90-500", total: 100) == .part(90...99))
        #expect(ByteRange.resolve("bytes=-10", total: 100) == .part(90...99))
        #expect(ByteRange.resolve("bytes=-500", total: 100) == .part(0...99))
        #expect(ByteRange.resolve("bytes=100-", total: 100) == .unsatisfiable)
        #expect(ByteRange.resolve("bytes=-0", total: 100) == .unsatisfiable)
        #expect(ByteRange.resolve("bytes=5-1", total: 100) == .whole)
        #expect(ByteRange.resolve("bytes=0-1,5-6", total: 100) == .whole)
        #expect(ByteRange.resolve("items=0-1", total: 100) == .whole)
        #expect(ByteRange.resolve("bytes=a-b", total: 100) == .whole)
    }
}
