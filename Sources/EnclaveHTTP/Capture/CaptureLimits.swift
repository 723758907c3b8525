import Foundation
import Synchronization

/// Rate limits of the snippet's public endpoints, per web property key and per client address,
/// in fixed one-minute windows, in this process (each process of a deployment limits on its own).
/// A page view costs 1, a form 10.
final class CaptureLimits: Sendable {
    let perKey: Int
    let perAddress: Int
    private let windows = Mutex<(start: Date, counts: [String: Int])>((Date(), [:]))

    init(perKey: Int = 6_000, perAddress: Int = 120) {
        self.perKey = perKey
        self.perAddress = perAddress
    }

    /// Counts a request, or refuses it with 429 when either budget of this minute is spent.
    func admit(key: String, address: String?, cost: Int, now: Date = Date()) throws {
        let admitted = windows.withLock { state in
            if now.timeIntervalSince(state.start) >= 60 || state.counts.count > 100_000 {
                state = (now, [:])
            }
            let keyCount = state.counts["k:" + key, default: 0] + cost
            let addressCount = state.counts["a:" + (address ?? "?"), default: 0] + cost
            guard keyCount <= perKey, addressCount <= perAddress else { return false }
            state.counts["k:" + key] = keyCount
            state.counts["a:" + (address ?? "?")] = addressCount
            return true
        }
        guard admitted else {
            RequestValues.current.outcome.set(header: "Retry-After", "60")
            throw Problem(
                .tooManyRequests, "too many requests from this site or address; retry in a minute", type: "rate-limited"
            )
        }
    }
}
