import NIOCore
import NIOEmbedded
import Testing

@testable import EnclaveWorkers

/// STARTTLS command injection (issue 25): replies a server (or a man in the middle) sent in
/// plaintext after the 220 must not answer commands sent over TLS.
@Suite("SMTP replies read before TLS are dropped at STARTTLS")
struct SMTPRepliesTests {
    @Test("a reply injected after the 220, and a partial line, are gone after discardPlaintext")
    func injectedRepliesDropped() throws {
        let channel = EmbeddedChannel()
        let replies = SMTPReplies()
        try channel.pipeline.syncOperations.addHandler(replies)
        try channel.writeInbound(ByteBuffer(string: "220 go ahead\r\n250 injected\r\n235 auth ok, also inj"))
        #expect(replies.pendingReplies == 2)
        replies.discardPlaintext()
        #expect(replies.pendingReplies == 0)
        // Replies that come after (over TLS) are read as before.
        try channel.writeInbound(ByteBuffer(string: "250 over TLS\r\n"))
        #expect(replies.pendingReplies == 1)
        _ = try channel.finish()
    }
}
