import Foundation
import Postgres
import Sealing

/// Fetches media a provider hosts. Implementations verify certificates, refuse redirects, time
/// out, and apply the egress policy; a thrown error means nothing usable arrived.
public protocol MediaTransport: Sendable {
    /// GETs `url`. `response` sees the status and content type first and says whether to read
    /// the body; `piece` then gets the body's bytes as they arrive.
    func get(
        _ url: URL, headers: [(String, String)], response: (Int, String?) throws -> Bool,
        piece: ([UInt8]) async throws -> Void
    ) async throws

    /// DELETEs `url`; returns the status.
    func delete(_ url: URL, headers: [(String, String)]) async throws -> Int
}

/// The recording worker: for each queued fetch (a provider's recording callback), downloads the
/// media from an allowlisted host with the account's credentials, seals it as the call's
/// recording, then deletes it at the provider, as the maintenance role, one practice at a time.
///
/// The two steps commit separately, in order: the recording is stored (and `recording.fetched`
/// recorded) before the provider's copy is deleted (`recording.provider_deleted`), so a crash
/// never loses both copies; it resumes at the step that did not commit. Failures retry with
/// backoff and end as `failed` after the policy's attempts; what is kept of a failure is a
/// status code or a fixed reason, never a body.
public struct RecordingFetcher: Sendable {
    public typealias Policy = WebhookDeliverer.Policy

    /// What one pass did.
    public struct Summary: Sendable, Equatable {
        public var fetched = 0
        public var deleted = 0
        public var retrying = 0
        public var failed = 0

        public init() {}
    }

    public let maintenance: MaintenanceContext
    public let keys: TenantKeyStore
    public let transport: any MediaTransport
    /// Hosts (`name` or `name:port`) media may come from (`MediaHosts`).
    public let mediaHosts: Set<String>
    public let policy: Policy
    public let now: @Sendable () -> Date

    public init(
        maintenance: MaintenanceContext, keys: TenantKeyStore, transport: any MediaTransport,
        mediaHosts: Set<String> = MediaHosts.default, policy: Policy = Policy(),
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.maintenance = maintenance
        self.keys = keys
        self.transport = transport
        self.mediaHosts = mediaHosts
        self.policy = policy
        self.now = now
    }

    /// Works every fetch that is due now (up to `limit`).
    public func fetchDue(limit: Int = 20) async throws -> Summary {
        let due = try await maintenance.pool.query(
            "select tenant_id, id from enclave_private.due_recording_fetches($1, $2)", [now(), Int32(limit)])
        var summary = Summary()
        for row in due {
            try await work(
                tenant: try row.decode(UUID.self, "tenant_id"), id: try row.decode(UUID.self, "id"), &summary)
        }
        return summary
    }

    /// A step that did not succeed: retried later, or the fetch fails for good.
    struct StepFailure: Error {
        let status: Int?
        let reason: String
        var final = false
    }

    struct Fetch {
        let source: UUID
        let lead: UUID
        let recording: String
        let url: URL
        let step: String
        let attempts: Int
        let authorization: String
    }

    private func work(tenant: UUID, id: UUID, _ summary: inout Summary) async throws {
        // The fetch step, then (once it committed) the delete step.
        for _ in 0..<2 {
            do {
                let outcome = try await maintenance.withTenant(tenant) { transaction -> String? in
                    guard let fetch = try await load(tenant: tenant, id: id, transaction) else { return nil }
                    if fetch.step == "fetch" {
                        try await store(fetch, tenant: tenant, id: id, transaction)
                        return "fetched"
                    }
                    try await deleteAtProvider(fetch, tenant: tenant, id: id, transaction)
                    return "deleted"
                }
                switch outcome {
                case "fetched": summary.fetched += 1
                case "deleted":
                    summary.deleted += 1
                    return
                default: return
                }
            } catch let failure as StepFailure {
                if try await record(failure, tenant: tenant, id: id) {
                    summary.failed += 1
                } else {
                    summary.retrying += 1
                }
                return
            }
        }
    }

    /// The fetch row, locked, with what its step needs; nil when it is not due (another worker
    /// has it, or it is finished).
    private func load(tenant: UUID, id: UUID, _ transaction: Transaction) async throws -> Fetch? {
        guard
            let row = try await transaction.query(
                """
                select source_id, lead_id, recording_sid, media_url, step, attempts from enclave.recording_fetches
                where tenant_id = $1 and id = $2 and step in ('fetch', 'delete') and next_attempt_at <= $3
                for update skip locked
                """,
                [tenant, id, now()]
            ).first
        else { return nil }
        let source = try row.decode(UUID.self, "source_id")
        guard let url = URL(string: try row.decode(String.self, "media_url")), url.host != nil else {
            throw StepFailure(status: nil, reason: "the media URL is not valid", final: true)
        }
        // The callback checked this too; the allowlist may have changed since it was queued.
        guard MediaHosts.allows(url, in: mediaHosts) else {
            throw StepFailure(status: nil, reason: "the media host is not allowlisted", final: true)
        }
        guard
            let credential = try await transaction.query(
                "select provider, provider_account, wrapped_secret from enclave_private.provider_credential($1)",
                [source]
            ).first, try credential.decode(String.self, "provider") == "twilio",
            let account = try credential.decode(String?.self, "provider_account")
        else { throw StepFailure(status: nil, reason: "the source has no provider account", final: true) }
        let token = try await keys.provider.unwrap(
            try credential.decode([UInt8].self, "wrapped_secret"), context: TrackingSources.secretContext(source))
        let basic = token.withUnsafeBytes { Data(Array("\(account):".utf8) + Array($0)).base64EncodedString() }
        return Fetch(
            source: source, lead: try row.decode(UUID.self, "lead_id"),
            recording: try row.decode(String.self, "recording_sid"), url: url,
            step: try row.decode(String.self, "step"), attempts: try row.decode(Int.self, "attempts"),
            authorization: "Basic " + basic)
    }

    /// Downloads the media into the call's recording, sealed; then the delete step is due.
    private func store(_ fetch: Fetch, tenant: UUID, id: UUID, _ transaction: Transaction) async throws {
        let call = try await transaction.query(
            "select recording_chunks is not null as has from enclave.leads where tenant_id = $1 and id = $2 for update",
            [tenant, fetch.lead])
        if try call.first?.decode(Bool.self, "has") == false {
            let keySet = try await keys.keys(tenant, in: transaction)
            var writer = try RecordingWriter(
                transaction: transaction, practice: tenant, lead: fetch.lead, key: try await keySet.activeDataKey())
            var contentType = ""
            do {
                try await transport.get(
                    fetch.url, headers: [("Authorization", fetch.authorization), ("Accept", "audio/*")],
                    response: { status, type in
                        guard status == 200 else {
                            throw StepFailure(status: status, reason: "the provider answered \(status)")
                        }
                        contentType = type ?? ""
                        guard contentType.hasPrefix("audio/"), contentType.utf8.count <= 100 else {
                            throw StepFailure(status: status, reason: "the media is not audio", final: true)
                        }
                        return true
                    },
                    piece: { try await writer.append($0) })
            } catch let failure as StepFailure {
                throw failure
            } catch let error as AccessError where error.code == .invalidInput {
                throw StepFailure(status: 200, reason: "the media is larger than 1 GiB", final: true)
            } catch {
                throw StepFailure(status: nil, reason: "the media could not be downloaded")
            }
            let (header, total, chunks) = try await writer.finish()
            try await transaction.query(
                """
                update enclave.leads set recording_header = $3, recording_bytes = $4, recording_chunks = $5,
                       recording_content_type = $6
                where tenant_id = $1 and id = $2 and recording_chunks is null
                """,
                [tenant, fetch.lead, header, total, chunks, contentType])
            try await transaction.audit(
                AuditEvent(
                    tenant: tenant, action: .recordingFetched, objectType: "recording",
                    objectID: fetch.lead.uuidString.lowercased(),
                    details: ["bytes": .int(Int(total)), "recording": .string(fetch.recording)]))
        }
        try await transaction.query(
            """
            update enclave.recording_fetches set step = 'delete', fetched_at = now(), attempts = 0,
                   next_attempt_at = $3, last_status = null, last_error = null
            where tenant_id = $1 and id = $2
            """,
            [tenant, id, now()])
    }

    /// Deletes the provider's copy (already gone counts as deleted).
    private func deleteAtProvider(_ fetch: Fetch, tenant: UUID, id: UUID, _ transaction: Transaction) async throws {
        let status: Int
        do {
            status = try await transport.delete(fetch.url, headers: [("Authorization", fetch.authorization)])
        } catch {
            throw StepFailure(status: nil, reason: "the provider could not be reached to delete the media")
        }
        guard [200, 204, 404].contains(status) else {
            throw StepFailure(status: status, reason: "the provider answered \(status) to the delete")
        }
        try await transaction.audit(
            AuditEvent(
                tenant: tenant, action: .recordingProviderDeleted, objectType: "recording",
                objectID: fetch.lead.uuidString.lowercased(), details: ["recording": .string(fetch.recording)]))
        try await transaction.query(
            """
            update enclave.recording_fetches set step = 'done', deleted_at = now(), last_status = $3, last_error = null
            where tenant_id = $1 and id = $2
            """,
            [tenant, id, Int32(status)])
    }

    /// Records a failed attempt (its own transaction: the step's work rolled back); returns
    /// whether the fetch has now failed for good.
    private func record(_ failure: StepFailure, tenant: UUID, id: UUID) async throws -> Bool {
        try await maintenance.withTenant(tenant) { transaction in
            guard
                let row = try await transaction.query(
                    "select attempts from enclave.recording_fetches where tenant_id = $1 and id = $2 for update",
                    [tenant, id]
                ).first
            else { return false }
            let attempts = try row.decode(Int.self, "attempts") + 1
            let final = failure.final || attempts >= policy.maximumAttempts
            try await transaction.query(
                """
                update enclave.recording_fetches
                set attempts = $3, next_attempt_at = $4, last_status = $5, last_error = $6,
                    step = case when $7 then 'failed' else step end
                where tenant_id = $1 and id = $2
                """,
                [
                    tenant, id, Int32(attempts), now().addingTimeInterval(policy.delay(after: attempts)),
                    failure.status.map(Int32.init), failure.reason, final,
                ])
            return final
        }
    }
}
