import NIOCore
import NIOEmbedded
import Testing

@testable import EnclaveWorkers

/// STARTTLS command injection (issue 25): replies a server (or a man in the middle) sent in
/// plaintext after the 220 must not answer commands sent over TLS.
@Suite("SMTP replies read before TLS are dropped at STARTTLS")
struct SMTPRepliesTests {
    /// Stands in for the TLS handler.
    final class Marker: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
    }

    @Test("a reply injected after the 220, and a partial line, are gone once TLS is put in front")
    func injectedRepliesDropped() async throws {
        let channel = NIOAsyncTestingChannel()
        let replies = SMTPReplies()
        try await channel.pipeline.addHandler(replies)
        try await channel.writeInbound(ByteBuffer(string: "220 go ahead\r\n250 injected\r\n235 auth ok, also inj"))
        #expect(replies.pendingReplies == 2)
        try await replies.startTLS(on: channel) { Marker() }
        #expect(replies.pendingReplies == 0)
        _ = try await channel.pipeline.handler(type: Marker.self).get()
        // Replies that come after (over TLS) are read as before.
        try await channel.writeInbound(ByteBuffer(string: "250 over TLS\r\n"))
        #expect(replies.pendingReplies == 1)
        _ = try await channel.finish()
    }
}
