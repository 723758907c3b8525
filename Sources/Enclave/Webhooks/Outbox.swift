import Foundation
import Postgres

/// The outbox: what must go out about a new lead, written in the transaction that stores it,
/// so a crash loses neither the lead nor its notices. Payloads here never carry PHI: the lead's
/// id, kind, time and marketing attribution, and a link. PHI is added only at delivery, and only
/// for a BAA-covered HTTPS endpoint (`WebhookDeliverer`).
enum Outbox {
    /// Queues a `lead.created` webhook for each active endpoint of the practice and one
    /// notification (for a mailer).
    static func enqueueNewLead(_ transaction: Transaction, practice: UUID, lead: UUID) async throws {
        try await transaction.query(
            """
            with notice as (
                select jsonb_build_object(
                    'event', 'lead.created', 'lead_id', l.id, 'practice_id', l.tenant_id, 'kind', l.kind,
                    'occurred_at', l.occurred_at,
                    'attribution', jsonb_strip_nulls(jsonb_build_object(
                        'source', l.source, 'medium', l.medium, 'campaign', l.campaign, 'keyword', l.keyword)),
                    'link', '/v1/practices/' || l.tenant_id || '/leads/' || l.id) as payload
                from enclave.leads l where l.tenant_id = $1 and l.id = $2
            )
            insert into enclave.outbox (tenant_id, kind, endpoint_id, payload)
            select $1, 'webhook', e.id, notice.payload
            from enclave.webhook_endpoints e, notice where e.tenant_id = $1 and e.active
            union all
            select $1, 'notification', null, notice.payload from notice
            """,
            [practice, lead])
    }
}
