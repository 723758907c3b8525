import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres
import Sealing

/// Twilio-format calls against the signed JSON path: the same number of calls through each, in
/// alternating rounds with the same concurrency, on one database; prints each rate, the medians
/// and their ratio. Signatures are computed before the clock starts (they are the provider's work).
func captureBenchmark(calls: Int, rounds: Int = 3, concurrency: Int = 8) async throws {
    try await withBenchDatabase { database, keyFile in
        let bench = try await BenchServices(database, keyFile: keyFile, connections: concurrency + 2)
        let (maint, keys, services, directory) = (bench.maint, bench.keys, bench.services, bench.directory)
        let practice = try await PracticeRegistry(keys: keys).create(name: "Capture Bench")
        let owner = try await directory.createUser(
            email: "owner@bench.test", displayName: "Owner", password: "bench password 123")
        try await directory.grant(user: owner, role: .practiceOwner, practice: practice)
        let login = try await services.identity.signInFresh(email: "owner@bench.test", password: "bench password 123")
        let (json, secret) = try await services.sources.create(
            login.token, practice: practice, kind: "call", label: "Signed JSON line")
        let account = "AC" + String(repeating: "0123456789abcdef", count: 2)
        let token = "benchauthtoken0123456789abcdef"
        let twilio = try await services.sources.createTwilio(
            login.token, practice: practice, label: "Twilio line", trackingNumber: nil,
            twilio: TwilioSettings(accountSID: account, authToken: token, forwardTo: "+15550109999"))
        let capture = services.twilio
        let base = "https://enclave.bench"

        func jsonRequests(_ round: Int) throws -> [IngestRequest] {
            let now = Int64(Date().timeIntervalSince1970)
            return try (0..<calls).map { index in
                let body = Array(
                    #"{"caller_number": "+1555\#(String(format: "%07d", index))", "caller_name": "Bench Caller", "started_at": "2026-11-29T10:00:00Z", "duration_seconds": 60, "disposition": "answered"}"#
                        .utf8)
                return IngestRequest(
                    sourceID: json.id, signature: try IngestSignature.sign(body, secret: secret, timestamp: now),
                    idempotencyKey: "json-\(round)-\(index)", body: body)
            }
        }
        func twilioRequests(_ round: Int) throws -> [CaptureRequest] {
            let url = "\(base)/v1/capture/twilio/\(twilio.id.uuidString.lowercased())/voice"
            return try (0..<calls).map { index in
                let sid = "CA" + String(format: "%02x%030x", round, index)
                let body =
                    "AccountSid=\(account)&CallSid=\(sid)&CallStatus=ringing&CallerName=Bench+Caller&Direction=inbound"
                    + "&From=%2B1555\(String(format: "%07d", index))&To=%2B15550001234"
                let form = try FormBody(Array(body.utf8))
                return CaptureRequest(
                    sourceID: twilio.id, url: url, baseURL: base,
                    signature: try TwilioSignature.expected(url: url, form: form, authToken: token),
                    body: Array(body.utf8))
            }
        }
        func timed<Request: Sendable>(_ requests: [Request], _ send: @escaping @Sendable (Request) async throws -> Void)
            async throws -> Double
        {
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                var pending = requests[...]
                for _ in 0..<concurrency {
                    guard let next = pending.popFirst() else { break }
                    group.addTask { try await send(next) }
                }
                while try await group.next() != nil {
                    if let next = pending.popFirst() { group.addTask { try await send(next) } }
                }
            }
            let elapsed = ContinuousClock.now - started
            return Double(calls)
                / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        let ingest = services.ingest
        var jsonRates: [Double] = []
        var twilioRates: [Double] = []
        for round in 0..<rounds {
            let signed = try jsonRequests(round)
            jsonRates.append(try await timed(signed) { _ = try await ingest.ingestCall($0) })
            let posted = try twilioRequests(round)
            twilioRates.append(try await timed(posted) { _ = try await capture.incomingCall($0) })
            print(
                String(
                    format: "capture round %d: signed JSON %.0f calls/s, Twilio format %.0f calls/s", round + 1,
                    jsonRates[round], twilioRates[round]))
        }
        let median = { (rates: [Double]) in rates.sorted()[rates.count / 2] }
        print(
            String(
                format:
                    "capture: %d calls a round, %d at a time, median of %d rounds: signed JSON %.0f calls/s, Twilio format %.0f calls/s (%.2fx)",
                calls, concurrency, rounds, median(jsonRates), median(twilioRates),
                median(twilioRates) / median(jsonRates)))
        await services.close()
        await maint.close()
    }
}
