import EnclaveScratchDatabase

/// Polls `condition` every 10 ms until it holds; throws after `timeout`, so that a test whose
/// condition never comes fails instead of hanging.
public func waitUntil(
    timeout: Duration = .seconds(60), _ what: String, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestSetupError("timed out waiting until \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
