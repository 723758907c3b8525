import Foundation
import Postgres
import Sealing

/// Links audit events into their chains, in batches, off the path of the accesses they record.
///
/// An access writes its event unlinked, in its own transaction and without a lock (sql/
/// functions/audit.sql). The chainer, as the maintenance role with the audit key, reads the
/// oldest unlinked events, computes each link (`AuditLink`, an HMAC under the key) and writes the
/// batch in one transaction; the database refuses a batch that does not continue its chains'
/// heads. After each batch commits, the heads that moved are appended to the checkpoint log.
/// A transaction-scoped advisory lock lets one chainer work at a time (and works behind a
/// transaction-mode pooler); another simply finds nothing to do.
public struct AuditChainer: Sendable {
    /// What a pass did.
    public struct Summary: Sendable, Equatable {
        public var linked = 0
        public var chains = 0
        /// Heads appended to the checkpoint log.
        public var checkpointed = 0

        public init() {}
    }

    public let maintenance: MaintenanceContext
    let key: MasterKeyFile
    let log: CheckpointLog?
    /// Events per transaction.
    public let batchSize: Int

    public init(maintenance: MaintenanceContext, key: MasterKeyFile, log: CheckpointLog?, batchSize: Int = 5_000) {
        self.maintenance = maintenance
        self.key = key
        self.log = log
        self.batchSize = max(1, min(batchSize, 50_000))
    }

    /// Links every event that was unlinked when the pass began (and any that arrive meanwhile, up
    /// to a point), then checkpoints.
    public func linkPending() async throws -> Summary {
        var summary = Summary()
        var chains = Set<UUID>()
        while true {
            let batch = try await linkBatch()
            summary.linked += batch.linked
            chains.formUnion(batch.heads.map(\.chain))
            if let log, !batch.heads.isEmpty { summary.checkpointed += try log.append(batch.heads) }
            if batch.linked < batchSize || summary.linked >= 20 * batchSize { break }
        }
        summary.chains = chains.count
        return summary
    }

    /// Appends every chain head the database holds that the log does not (after a crash between
    /// a batch's commit and its checkpoint, or for `enclave audit checkpoint`). Returns how many.
    @discardableResult
    public func checkpointAllHeads() async throws -> Int {
        guard let log else { return 0 }
        let heads = try await maintenance.pool.query(
            "select chain_id, seq, hash from enclave_private.audit_chain_heads()"
        )
        .map {
            Checkpoint.Head(
                chain: try $0.decode(UUID.self, "chain_id"), seq: try $0.decode(Int64.self, "seq"),
                hash: try $0.decode([UInt8].self, "hash"))
        }
        .filter { $0.seq > 0 }
        return try log.append(heads)
    }

    private func linkBatch() async throws -> (linked: Int, heads: [Checkpoint.Head]) {
        try await maintenance.pool.withTransaction { transaction in
            let locked = try await transaction.query(
                "select pg_try_advisory_xact_lock(hashtext('enclave.audit.chainer')::int8) as locked")
            guard try locked.first?.decode(Bool.self, "locked") == true else { return (0, []) }
            let rows = try await transaction.query(
                "select * from enclave_private.unlinked_audit_events($1::int4)", [Int64(batchSize)])
            guard !rows.isEmpty else { return (0, []) }
            var heads: [UUID: Checkpoint.Head] = [:]
            var chains: [UUID] = [], seqs: [Int64] = [], positions: [Int64] = []
            var previous: [String] = [], hashes: [String] = []
            for row in rows {
                let event = try AuditLink.Event(row)
                let head =
                    try heads[event.chain]
                    ?? Checkpoint.Head(
                        chain: event.chain, seq: try row.decode(Int64.self, "head_seq"),
                        hash: try row.decode([UInt8].self, "head_hash"))
                let position = head.seq + 1
                let hash = try AuditLink.hash(event, chainSeq: position, previous: head.hash, key: key)
                chains.append(event.chain)
                seqs.append(event.seq)
                positions.append(position)
                previous.append(head.hash.hex)
                hashes.append(hash.hex)
                heads[event.chain] = Checkpoint.Head(chain: event.chain, seq: position, hash: hash)
            }
            try await transaction.query(
                "select enclave_private.link_audit_events($1, $2, $3, $4, $5)",
                [chains, seqs, positions, previous, hashes])
            return (rows.count, Array(heads.values))
        }
    }
}
