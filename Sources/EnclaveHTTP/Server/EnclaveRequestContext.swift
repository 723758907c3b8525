import Hummingbird
import NIOCore

/// Hummingbird's request context plus the peer address, for sessions, throttling and audit.
struct EnclaveRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: Source) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
