import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// The recording worker against PostgreSQL, with the provider played by a scripted transport
/// (the real HTTPS path, with the twilio package and a loopback stand-in, is scripts/capture-test).
@Suite("Capture: fetching provider recordings")
struct RecordingFetcherTests {
    /// The provider: answers each GET and DELETE from a script, and notes what it was asked.
    final class Provider: MediaTransport {
        let gets = Locked<[Int]>([])
        let deletes = Locked<[Int]>([])
        let seen = Locked<[(String, String, String?)]>([])
        let media: [UInt8]
        let contentType: String

        init(media: [UInt8], contentType: String = "audio/x-wav", gets: [Int] = [200], deletes: [Int] = [204]) {
            self.media = media
            self.contentType = contentType
            self.gets.withLock { $0 = gets }
            self.deletes.withLock { $0 = deletes }
        }

        func get(
            _ url: URL, headers: [(String, String)], response: (Int, String?) throws -> Bool,
            piece: ([UInt8]) async throws -> Void
        ) async throws {
            seen.withLock { $0.append(("GET", url.absoluteString, headers.first { $0.0 == "Authorization" }?.1)) }
            let status = gets.withLock { $0.isEmpty ? 200 : $0.removeFirst() }
            guard try response(status, contentType) else { return }
            for start in stride(from: 0, to: media.count, by: 10_000) {
                try await piece(Array(media[start..<min(start + 10_000, media.count)]))
            }
        }

        func delete(_ url: URL, headers: [(String, String)]) async throws -> Int {
            seen.withLock { $0.append(("DELETE", url.absoluteString, headers.first { $0.0 == "Authorization" }?.1)) }
            return deletes.withLock { $0.isEmpty ? 204 : $0.removeFirst() }
        }
    }

    static let recording = "RE" + String(repeating: "12", count: 16)

    /// A stored Twilio call with a queued recording fetch; the fetcher, its clock and the provider.
    static func with(
        provider: Provider, mediaHosts: Set<String> = ["media.test"],
        _ body: (TwilioCaptureTests.Fixture, RecordingFetcher, Locked<Date>, UUID) async throws -> Void
    ) async throws {
        try await TwilioCaptureTests.with { fixture in
            let (call, _) = try await fixture.capture.incomingCall(
                try fixture.request("voice", TwilioCaptureTests.call(TwilioCaptureTests.sid)))
            let url =
                "https://media.test/2010-04-01/Accounts/\(TwilioCaptureTests.account)/Recordings/\(Self.recording)"
            try await fixture.capture.recordingReady(
                try fixture.request(
                    "recording",
                    TwilioCaptureTests.call(TwilioCaptureTests.sid) + [
                        ("RecordingSid", Self.recording), ("RecordingUrl", url), ("RecordingStatus", "completed"),
                    ]))
            let clock = Locked(Date())
            let fetcher = RecordingFetcher(
                maintenance: fixture.leads.keys.maintenance, keys: fixture.leads.keys.store, transport: provider,
                mediaHosts: mediaHosts, policy: .init(firstDelay: 60), now: { clock.value })
            try await body(fixture, fetcher, clock, call.leadID)
        }
    }

    static func state(_ fixture: TwilioCaptureTests.Fixture) async throws -> (step: String, attempts: Int) {
        let connection = try await fixture.leads.base.keys.database.connect()
        defer { Task { await connection.close() } }
        let row = try #require(
            try await connection.query("select step, attempts from enclave.recording_fetches").first)
        return (try row.decode(String.self, "step"), try row.decode(Int.self, "attempts"))
    }

    static func played(_ fixture: TwilioCaptureTests.Fixture, _ lead: UUID) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        _ = try await fixture.leads.leads.streamRecording(
            fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, lead: lead
        ) { bytes += $0 }
        return bytes
    }

    @Test("fetched with the account's credentials, sealed, played back byte for byte, deleted at the provider, audited")
    func fetchAndDelete() async throws {
        let media = (0..<150_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let provider = Provider(media: media)
        try await Self.with(provider: provider) { fixture, fetcher, _, lead in
            let pass = try await fetcher.fetchDue()
            #expect(pass.fetched == 1 && pass.deleted == 1 && pass.failed == 0)
            let basic =
                "Basic "
                + Data("\(TwilioCaptureTests.account):\(TwilioCaptureTests.authToken)".utf8)
                .base64EncodedString()
            #expect(provider.seen.value.map(\.0) == ["GET", "DELETE"])
            #expect(provider.seen.value.allSatisfy { $0.2 == basic })
            #expect(try await Self.state(fixture).step == "done")
            #expect(try await Self.played(fixture, lead) == media)
            let events = try await AuditLog(identity: fixture.leads.base.identity).practiceEvents(
                fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA)
            let steps = ["recording.fetched", "recording.provider_deleted"]
            #expect(
                events.filter { steps.contains($0.action) }.map(\.action).reversed() == [
                    "recording.fetched", "recording.provider_deleted",
                ])
            // Nothing more to do.
            #expect(try await fetcher.fetchDue() == RecordingFetcher.Summary())
        }
    }

    @Test(
        "a failed download retries after the backoff; a failed delete keeps the stored recording and retries only the delete"
    )
    func retries() async throws {
        let media = Array("RIFF not really a wave, but audio/x-wav says it is".utf8)
        let provider = Provider(media: media, gets: [503, 200], deletes: [500, 204])
        try await Self.with(provider: provider) { fixture, fetcher, clock, lead in
            #expect(try await fetcher.fetchDue().retrying == 1)
            let first = try await Self.state(fixture)
            #expect(first.step == "fetch" && first.attempts == 1)
            // Not due before the backoff.
            #expect(try await fetcher.fetchDue() == RecordingFetcher.Summary())
            clock.withLock { $0 += 61 }
            let second = try await fetcher.fetchDue()
            #expect(second.fetched == 1 && second.retrying == 1)
            let after = try await Self.state(fixture)
            #expect(after.step == "delete" && after.attempts == 1)
            #expect(try await Self.played(fixture, lead) == media)
            clock.withLock { $0 += 61 }
            #expect(try await fetcher.fetchDue().deleted == 1)
            #expect(provider.seen.value.map(\.0) == ["GET", "GET", "DELETE", "DELETE"])
            #expect(try await Self.state(fixture).step == "done")
        }
    }

    @Test("a callback whose media URL names a host off the allowlist is refused and queues nothing")
    func offListCallback() async throws {
        try await TwilioCaptureTests.with { fixture in
            _ = try await fixture.capture.incomingCall(
                try fixture.request("voice", TwilioCaptureTests.call(TwilioCaptureTests.sid)))
            for host in ["evil.test", "media.test:8443", "media.test.evil.test"] {
                let url =
                    "https://\(host)/2010-04-01/Accounts/\(TwilioCaptureTests.account)/Recordings/\(Self.recording)"
                await #expect(
                    throws: AccessError(.invalidInput, "RecordingUrl's host is not one recordings are fetched from")
                ) {
                    try await fixture.capture.recordingReady(
                        try fixture.request(
                            "recording",
                            TwilioCaptureTests.call(TwilioCaptureTests.sid) + [
                                ("RecordingSid", Self.recording), ("RecordingUrl", url),
                                ("RecordingStatus", "completed"),
                            ]))
                }
            }
            let connection = try await fixture.leads.base.keys.database.connect()
            defer { Task { await connection.close() } }
            let queued = try await connection.query("select count(*)::int8 as n from enclave.recording_fetches").first?
                .decode(Int.self, "n")
            #expect(queued == 0)
        }
    }

    @Test("ENCLAVE_MEDIA_HOSTS: one setting for the callback and the worker; a bad entry is named")
    func mediaHostsSetting() throws {
        #expect(try MediaHosts.fromEnvironment([:]) == ["api.twilio.com"])
        #expect(
            try MediaHosts.fromEnvironment(["ENCLAVE_MEDIA_HOSTS": " Media.test, localhost:9443 "]) == [
                "media.test", "localhost:9443",
            ])
        #expect(throws: ConfigurationError.self) {
            try MediaHosts.fromEnvironment(["ENCLAVE_MEDIA_HOSTS": "https://x.test/"])
        }
        #expect(MediaHosts.allows(URL(string: "https://localhost:9443/a")!, in: ["localhost:9443"]))
        #expect(!MediaHosts.allows(URL(string: "https://localhost/a")!, in: ["localhost:9443"]))
    }

    @Test("a host off the allowlist is never contacted, and media that is not audio is not stored: both fail for good")
    func refused() async throws {
        let offList = Provider(media: [1, 2, 3])
        try await Self.with(provider: offList, mediaHosts: ["api.twilio.com"]) { fixture, fetcher, _, _ in
            let pass = try await fetcher.fetchDue()
            #expect(pass.failed == 1)
            #expect(offList.seen.value.isEmpty)
            #expect(try await Self.state(fixture).step == "failed")
        }
        let page = Provider(media: Array("<html>".utf8), contentType: "text/html")
        try await Self.with(provider: page) { fixture, fetcher, _, lead in
            #expect(try await fetcher.fetchDue().failed == 1)
            #expect(try await Self.state(fixture).step == "failed")
            let read = try await fixture.leads.leads.get(
                fixture.leads.base.ownerAToken, practice: fixture.leads.base.practiceA, lead: lead)
            #expect(read.recordingBytes == nil)
        }
    }
}
