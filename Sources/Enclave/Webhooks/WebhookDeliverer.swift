import Foundation
import Postgres
import Sealing

/// Sends one HTTP POST. Implementations refuse redirects and time out; a thrown error means the
/// receiver did not answer (nothing is known to have arrived).
public protocol WebhookTransport: Sendable {
    /// Posts `body` to `url`; returns the response status.
    func post(_ url: URL, headers: [(String, String)], body: [UInt8]) async throws -> Int
}

/// Delivers due webhooks from the outbox, as the maintenance role, one tenant transaction per
/// delivery.
///
/// Each delivery row stays locked while it is sent, and its new state (delivered, retry later,
/// failed) is written in the same transaction, together with `phi.disclosed` when PHI went out.
/// A crash mid-send rolls back, and the delivery is sent again later: at least once, with the
/// outbox id in `Enclave-Delivery` so receivers can drop duplicates.
///
/// HIPAA mode: PHI is added to the payload only for an active HTTPS endpoint marked as covered
/// by a BAA, decided at delivery time; any other endpoint gets the PHI-free payload; a
/// plain-HTTP endpoint of a HIPAA-mode practice gets nothing. Every body is signed like ingest:
/// `Enclave-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
public struct WebhookDeliverer: Sendable {
    /// Retries with exponential backoff, capped, then the delivery is marked failed.
    public struct Policy: Sendable {
        public var maximumAttempts = 8
        public var firstDelay: TimeInterval = 30
        public var longestDelay: TimeInterval = 3600

        public init(maximumAttempts: Int = 8, firstDelay: TimeInterval = 30, longestDelay: TimeInterval = 3600) {
            self.maximumAttempts = maximumAttempts
            self.firstDelay = firstDelay
            self.longestDelay = longestDelay
        }

        /// The wait after `attempts` failed attempts: first, 2×first, 4×first… up to longest.
        public func delay(after attempts: Int) -> TimeInterval {
            min(firstDelay * pow(2, Double(max(attempts - 1, 0))), longestDelay)
        }
    }

    /// What one pass did.
    public struct Summary: Sendable, Equatable {
        public var delivered = 0
        public var retrying = 0
        public var failed = 0
        /// Deliveries whose body carried PHI (each recorded as phi.disclosed).
        public var disclosed = 0

        public init() {}
    }

    public let maintenance: MaintenanceContext
    public let keys: TenantKeyStore
    public let transport: any WebhookTransport
    public let policy: Policy
    public let now: @Sendable () -> Date

    public init(
        maintenance: MaintenanceContext, keys: TenantKeyStore, transport: any WebhookTransport,
        policy: Policy = Policy(), now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.maintenance = maintenance
        self.keys = keys
        self.transport = transport
        self.policy = policy
        self.now = now
    }

    /// Sends every delivery that is due now (up to `limit`).
    public func deliverDue(limit: Int = 100) async throws -> Summary {
        let due = try await maintenance.pool.query(
            "select tenant_id, id from enclave_private.due_deliveries($1, $2)", [now(), Int32(limit)])
        var summary = Summary()
        for row in due {
            try await deliver(
                tenant: try row.decode(UUID.self, "tenant_id"), id: try row.decode(UUID.self, "id"), &summary)
        }
        return summary
    }

    private enum Outcome {
        case delivered(status: Int)
        case retry(status: Int?, reason: String, exhausted: Bool)
        case refused(reason: String)
    }

    private func deliver(tenant: UUID, id: UUID, _ summary: inout Summary) async throws {
        let at = now()
        let (outcome, disclosed) = try await maintenance.withTenant(tenant) { transaction -> (Outcome?, Bool) in
            let rows = try await transaction.query(
                """
                select o.payload, o.attempts, o.endpoint_id, e.url, e.baa_covered, e.active, e.signing_secret,
                       p.hipaa_mode, (o.payload ->> 'lead_id')::uuid as lead_id,
                       exists (select from enclave.leads l where l.tenant_id = o.tenant_id
                               and l.id = (o.payload ->> 'lead_id')::uuid and l.restricted_at is not null) as restricted
                from enclave.outbox o
                join enclave.webhook_endpoints e on e.tenant_id = o.tenant_id and e.id = o.endpoint_id
                join enclave.practices p on p.id = o.tenant_id
                where o.tenant_id = $1 and o.id = $2 and o.kind = 'webhook' and o.status = 'pending'
                  and o.next_attempt_at <= $3
                for update of o skip locked
                """,
                [tenant, id, at])
            // Taken by another worker, or no longer due.
            guard let row = rows.first else { return (nil, false) }
            let attempts = Int(try row.decode(Int32.self, "attempts")) + 1
            let endpoint = try row.decode(UUID.self, "endpoint_id")
            let urlText = try row.decode(String.self, "url")
            let secure = urlText.lowercased().hasPrefix("https://")
            let outcome: Outcome
            var disclosed = false
            if try !row.decode(Bool.self, "active") {
                outcome = .refused(reason: "endpoint removed")
            } else if try row.decode(Bool.self, "restricted") {
                // The practice agreed to the patient's request to restrict this lead (164.522).
                outcome = .refused(reason: "lead restricted at the patient's request")
            } else if !secure, try row.decode(Bool.self, "hipaa_mode") {
                outcome = .refused(reason: "plain-HTTP endpoint refused in HIPAA mode")
            } else if let url = URL(string: urlText) {
                let keySet = try await keys.keys(tenant, in: transaction)
                let secret = String(
                    decoding: try await keySet.open(
                        try row.decode([UInt8].self, "signing_secret"),
                        for: WebhookEndpoints.secretContext(practice: tenant, endpoint: endpoint)),
                    as: UTF8.self)
                var payload =
                    (try JSONSerialization.jsonObject(with: Data(try row.decode(JSONB.self, "payload").utf8))
                        as? [String: Any]) ?? [:]
                let covered = try row.decode(Bool.self, "baa_covered")
                let carriesPHI = secure && covered
                let lead = try row.decode(UUID?.self, "lead_id")
                if carriesPHI, let lead {
                    payload["phi"] = try await phi(lead: lead, practice: tenant, transaction)
                }
                let body = Array(try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]))
                let signature = try IngestSignature.sign(
                    body, secret: secret, timestamp: Int64(now().timeIntervalSince1970))
                do {
                    let status = try await transport.post(
                        url,
                        headers: [
                            ("Content-Type", "application/json"), ("Enclave-Signature", signature),
                            ("Enclave-Delivery", id.uuidString.lowercased()), ("Enclave-Event", "lead.created"),
                            ("User-Agent", "Enclave-Webhooks/1"),
                        ],
                        body: body)
                    // The receiver answered, so the body reached it: a disclosure, whatever the status.
                    if carriesPHI, let lead {
                        disclosed = true
                        try await transaction.audit(
                            AuditEvent(
                                tenant: tenant, action: .phiDisclosed, objectType: "lead",
                                objectID: lead.uuidString.lowercased(),
                                outcome: (200..<300).contains(status) ? .ok : .error,
                                reason: "webhook",
                                details: ["endpoint": .ids([endpoint]), "delivery": .ids([id]), "status": .int(status)])
                        )
                    }
                    outcome =
                        (200..<300).contains(status)
                        ? .delivered(status: status)
                        : .retry(
                            status: status, reason: "HTTP \(status)", exhausted: attempts >= policy.maximumAttempts)
                } catch let refusal as EgressPolicy.Refusal {
                    // Nothing was sent: the destination is not one deliveries may reach.
                    outcome = .retry(
                        status: nil, reason: "egress refused: \(refusal.reason)",
                        exhausted: attempts >= policy.maximumAttempts)
                } catch {
                    outcome = .retry(status: nil, reason: "no answer", exhausted: attempts >= policy.maximumAttempts)
                }
            } else {
                outcome = .refused(reason: "invalid URL")
            }
            switch outcome {
            case .delivered(let status):
                try await transaction.query(
                    """
                    update enclave.outbox set status = 'delivered', attempts = $3, delivered_at = $4, last_status = $5,
                        last_error = null
                    where tenant_id = $1 and id = $2
                    """,
                    [tenant, id, Int32(attempts), now(), Int32(status)])
            case .retry(let status, let reason, let last):
                try await transaction.query(
                    """
                    update enclave.outbox set status = $3, attempts = $4, next_attempt_at = $5, last_status = $6,
                        last_error = $7
                    where tenant_id = $1 and id = $2
                    """,
                    [
                        tenant, id, last ? "failed" : "pending", Int32(attempts),
                        now().addingTimeInterval(policy.delay(after: attempts)), status.map(Int32.init), reason,
                    ])
            case .refused(let reason):
                try await transaction.query(
                    "update enclave.outbox set status = 'failed', last_error = $3 where tenant_id = $1 and id = $2",
                    [tenant, id, reason])
            }
            return (outcome, disclosed)
        }
        if disclosed { summary.disclosed += 1 }
        switch outcome {
        case .delivered: summary.delivered += 1
        case .retry(_, _, let exhausted): if exhausted { summary.failed += 1 } else { summary.retrying += 1 }
        case .refused: summary.failed += 1
        case nil: break
        }
    }

    /// The lead's PHI, decrypted for a covered endpoint.
    private func phi(lead: UUID, practice: UUID, _ transaction: Transaction) async throws -> [String: Any] {
        let service = LeadService(access: PracticeAccess(pool: maintenance.pool), keys: keys)
        let rows = try await transaction.query(
            "select \(LeadService.columns) from enclave.leads where tenant_id = $1 and id = $2", [practice, lead])
        guard let found = try await service.decrypt(Array(rows), practice: practice, transaction).first else {
            return [:]
        }
        var phi: [String: Any] = [:]
        phi["caller_number"] = found.callerNumber
        phi["caller_name"] = found.callerName
        phi["transcript"] = found.transcript
        phi["form_fields"] = found.formFields
        phi["page_url"] = found.pageURL
        phi["duration_seconds"] = found.durationSeconds
        phi["disposition"] = found.disposition
        return phi
    }
}
