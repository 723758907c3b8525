import Foundation
import Postgres
import Sealing

/// How an audit event is bound into its chain, reproduced exactly by the chainer (which
/// writes links) and the verifier (which recomputes them).
///
/// - Link 1, events linked by the database before migration 0013:
///   `hash = SHA-256(prev_hash ‖ canonical v1)`, with `chain_seq = seq`. Anyone can compute
///   such a link, so none may follow a link 2 or a checkpointed head.
/// - Link 2, events linked by `AuditChainer`:
///   `hash = HMAC-SHA-256(audit key, prev_hash ‖ canonical v2)`. The key stays outside the
///   database, so whoever can write to it still cannot extend or rewrite a linked chain.
enum AuditLink {
    /// The columns of one event in the form the canonical encoding needs. The select list
    /// `AuditLink.columns` produces them, as does `enclave_private.unlinked_audit_events`.
    struct Event: Sendable {
        let chain: UUID
        let seq: Int64
        let atMicros: Int64
        /// actor, actor_kind, session, action, object_type, object_id, outcome, reason, ip,
        /// user_agent, request_id, details: text as PostgreSQL prints it, or nil.
        let fields: [String?]

        init(_ row: PostgresRow) throws {
            chain = try row.decode(UUID.self, "tenant_id")
            seq = try row.decode(Int64.self, "seq")
            atMicros = try row.decode(Int64.self, "at_micros")
            fields = try [
                "actor", "actor_kind", "session", "action", "object_type", "object_id", "outcome", "reason", "ip",
                "user_agent", "request_id", "details",
            ].map { try row.decode(String?.self, $0) }
        }
    }

    /// A select list of `enclave.audit_events e` that `Event` decodes.
    static let columns = """
        e.tenant_id, e.seq, (extract(epoch from e.at) * 1000000)::int8 as at_micros, e.actor_id::text as actor,
        e.actor_kind, e.session_id::text as session, e.action, e.object_type, e.object_id, e.outcome, e.reason,
        host(e.client_ip) as ip, e.user_agent, e.request_id, e.details::text as details
        """

    /// The canonical bytes of link 1, as `enclave_private.audit_canonical` built them (with the
    /// position, which equals `seq` for every event linked that way).
    static func canonicalV1(_ event: Event, chainSeq: Int64) -> [UInt8] {
        encode("enclave.audit.v1", [event.chain.uuidString.lowercased(), String(chainSeq), String(event.atMicros)])
            + encode("", event.fields)
    }

    /// The canonical bytes of link 2: the chain, the position in it, the event's number, time
    /// and every field, each length-prefixed so that no two different events encode the same.
    static func canonicalV2(_ event: Event, chainSeq: Int64) -> [UInt8] {
        encode(
            "enclave.audit.v2",
            [event.chain.uuidString.lowercased(), String(chainSeq), String(event.seq), String(event.atMicros)])
            + encode("", event.fields)
    }

    /// The link-2 hash of `event` at `chainSeq` after `previous`.
    static func hash(_ event: Event, chainSeq: Int64, previous: [UInt8], key: MasterKeyFile) throws -> [UInt8] {
        try key.authenticationCode(version: 1, message: previous + canonicalV2(event, chainSeq: chainSeq))
    }

    /// What a retention record's `authorization` authenticates.
    static func retentionMessage(chain: UUID, throughSeq: Int64, lastHash: [UInt8]) -> [UInt8] {
        Array("enclave.audit.retention.v1\n\(chain.uuidString.lowercased())\n\(throughSeq)\n\(lastHash.hex)\n".utf8)
    }

    private static func encode(_ prefix: String, _ values: [String?]) -> [UInt8] {
        var text = prefix
        for value in values {
            if let value { text += "\(value.utf8.count):\(value)" } else { text += "-1:" }
        }
        return Array(text.utf8)
    }
}

/// Retention of the oldest part of a chain, authorized with the audit key.
public enum AuditRetention {
    /// Removes `chain`'s linked events up to position `throughSeq` (as the owner role, the only
    /// one that may), recording in the chain what was removed with an authorization under the
    /// audit key that `AuditVerifier` checks. Returns how many events were removed.
    public static func apply(
        chain: UUID, throughSeq: Int64, key: MasterKeyFile, ownerPool pool: ConnectionPool
    ) async throws -> Int64 {
        try await pool.withTransaction { transaction in
            let rows = try await transaction.query(
                "select hash from enclave.audit_events where tenant_id = $1 and chain_seq = $2", [chain, throughSeq])
            guard let lastHash = try rows.first?.decode([UInt8]?.self, "hash") else {
                throw ConfigurationError("the chain has no linked event at position \(throughSeq)")
            }
            let authorization = try key.authenticationCode(
                version: 1,
                message: AuditLink.retentionMessage(chain: chain, throughSeq: throughSeq, lastHash: lastHash))
            return try await transaction.query(
                "select enclave_private.apply_audit_retention($1, $2, $3) as removed",
                [chain, throughSeq, authorization.hex]
            ).first?.decode(Int64.self, "removed") ?? 0
        }
    }
}
