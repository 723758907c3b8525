import NIOCore
import NIOEmbedded
import Testing

@testable import EnclaveHTTP

/// A client that stops reading (issue 25): its connection is closed after the write timeout,
/// whatever the response (recordings also end their stream on their own; see
/// `RecordingHTTPSTests/slowReaders`).
@Suite("Connections a client stops reading are closed")
struct WriteTimeoutTests {
    @Test("unwritable for the timeout: closed; writable again in time: kept")
    func closesStalledConnections() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: WriteTimeoutHandler(timeout: .seconds(30)), loop: loop)
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()

        // The client reads again before the timeout: nothing happens.
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        loop.advanceTime(by: .seconds(29))
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        loop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)

        // It stops for good: closed once the timeout passes.
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        loop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }
}
