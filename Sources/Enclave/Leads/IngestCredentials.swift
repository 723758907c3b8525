import Foundation
import Synchronization

/// Sources' credentials and their practices' active keys as last read, so that a warm ingest is
/// one round trip. Nothing here is trusted: `enclave_private.ingest_lead` checks the credential
/// (enabled, secret, practice active) and the key version in the statement that stores, and a
/// refusal drops the entry, so a disabled source or a rotated secret or key takes effect at the
/// next request, as it would without the cache. Only sources that exist are kept, at most
/// `capacity` of them, each for `lifetime` (so unwrapped keys stay in memory no longer than
/// that past the key cache's own limit).
final class IngestCredentials: Sendable {
    private struct Entry {
        var credential: IngestService.Credential
        var keys: TenantKeySet?
        let read = ContinuousClock.now
    }

    static let capacity = 10_000
    static let lifetime = Duration.seconds(60)
    private let entries = Mutex<[UUID: Entry]>([:])

    func credential(_ source: UUID) -> IngestService.Credential? {
        entries.withLock { fresh(&$0, source)?.credential }
    }

    func keys(_ source: UUID) -> TenantKeySet? {
        entries.withLock { fresh(&$0, source)?.keys }
    }

    private func fresh(_ entries: inout [UUID: Entry], _ source: UUID) -> Entry? {
        guard let entry = entries[source] else { return nil }
        guard ContinuousClock.now - entry.read < Self.lifetime else {
            entries[source] = nil
            return nil
        }
        return entry
    }

    func remember(_ credential: IngestService.Credential) {
        entries.withLock { entries in
            if entries[credential.source] == nil, entries.count >= Self.capacity { entries.removeAll() }
            // A credential read again may name another practice or secret: its keys go with it.
            entries[credential.source] = Entry(credential: credential, keys: nil)
        }
    }

    func remember(_ keys: TenantKeySet, for source: UUID) {
        entries.withLock { entries in
            guard entries[source]?.credential.practice == keys.tenantID else { return }
            entries[source]?.keys = keys
        }
    }

    func forget(_ source: UUID) {
        _ = entries.withLock { $0.removeValue(forKey: source) }
    }
}
