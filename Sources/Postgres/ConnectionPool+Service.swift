import ServiceLifecycle

extension ConnectionPool: Service {
    /// Runs until graceful shutdown (or cancellation), then closes the pool. Put it first in a
    /// `ServiceGroup`: services shut down in reverse order, so the servers that use the pool
    /// finish their requests before it closes.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
