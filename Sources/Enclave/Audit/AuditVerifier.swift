import Foundation
import Postgres
import Sealing

/// Walks audit chains and finds the first broken link of each: an edited, deleted, inserted or
/// reordered event, a link not made with the audit key, a retention record the key did not
/// authorize, or (against the checkpoint log) a truncated or rewritten tail. Events the chainer
/// has not linked yet are counted; one left unlinked longer than `maxUnlinkedAge` is a break
/// (the chainer is not running, or someone keeps it from linking).
public struct AuditVerifier: Sendable {
    /// A broken link: the chain, the position where it breaks, and what is wrong.
    public struct Break: Sendable, Equatable, CustomStringConvertible {
        public let chain: UUID
        public let seq: Int64
        public let problem: String
        public var description: String { "chain \(chain.uuidString.lowercased()) seq \(seq): \(problem)" }
    }

    /// What a run checked and found.
    public struct Report: Sendable {
        public let chains: Int
        /// Linked events whose links were recomputed.
        public let events: Int
        /// Events not linked yet, and when the oldest of them was written.
        public let unlinked: Int
        public let oldestUnlinked: Date?
        public let breaks: [Break]
        /// Platform numbers the chainer settled with no event (rolled back), per the log.
        public var missing: Int64 = 0
    }

    public let maintenance: MaintenanceContext
    /// The audit key, for links made by the chainer and retention records.
    let key: MasterKeyFile?
    public let maxUnlinkedAge: Duration

    public init(maintenance: MaintenanceContext, key: MasterKeyFile?, maxUnlinkedAge: Duration = .seconds(300)) {
        self.maintenance = maintenance
        self.key = key
        self.maxUnlinkedAge = maxUnlinkedAge
    }

    /// Every chain's head as the database keeps it.
    public func heads() async throws -> [Checkpoint.Head] {
        try await maintenance.pool.query("select chain_id, seq, hash from enclave_private.audit_chain_heads()").map {
            Checkpoint.Head(
                chain: try $0.decode(UUID.self, "chain_id"), seq: try $0.decode(Int64.self, "seq"),
                hash: try $0.decode([UInt8].self, "hash"))
        }
    }

    /// Refuses to verify without a checkpoint record once the database holds linked events: a
    /// missing, empty or unreadable log would let a cut tail pass unseen. (`--no-checkpoints` is
    /// for a first run, before any log exists.)
    ///
    /// - Throws: a `ConfigurationError` naming the log.
    public func requireCheckpoint(_ checkpoint: Checkpoint?, log path: String) async throws {
        guard checkpoint == nil else { return }
        if try await heads().contains(where: { $0.seq > 0 }) {
            throw ConfigurationError(
                "the checkpoint log \(path) is missing or empty, but the database holds linked audit events: "
                    + "a cut tail would pass unseen (restore the log; --no-checkpoints only for a first run)")
        }
    }

    /// Verifies `chains` (default: every chain with a head, and every practice) in one
    /// repeatable-read snapshot, so that heads and chains agree on a live system; read the
    /// checkpoint log before calling (what it holds was committed before it was written).
    public func verify(chains: [UUID]? = nil, checkpoint: Checkpoint? = nil) async throws -> Report {
        try await maintenance.pool.withTransaction(isolation: .repeatableRead) { transaction in
            let heads = try await transaction.query(
                "select chain_id, seq, hash from enclave_private.audit_chain_heads()"
            ).map {
                Checkpoint.Head(
                    chain: try $0.decode(UUID.self, "chain_id"), seq: try $0.decode(Int64.self, "seq"),
                    hash: try $0.decode([UInt8].self, "hash"))
            }
            var ids: [UUID]
            if let chains {
                ids = chains
            } else {
                let practices = try await transaction.query("select id from enclave.practices").map {
                    try $0.decode(UUID.self, "id")
                }
                ids = Array(Set(heads.map(\.chain)).union(practices)).sorted { $0.uuidString < $1.uuidString }
            }
            var breaks: [Break] = []
            var events = 0
            var unlinked = 0
            var oldest: Date?
            for chain in ids {
                try await transaction.query(
                    "select set_config('enclave.maint_tenant', $1, true)", [chain.uuidString.lowercased()])
                let result = try await verifyChain(
                    chain, head: heads.first { $0.chain == chain }, checkpointed: checkpoint?.history[chain] ?? [:],
                    transaction)
                events += result.events
                unlinked += result.unlinked
                if let at = result.oldestUnlinked { oldest = min(oldest ?? at, at) }
                if let problem = result.problem { breaks.append(problem) }
            }
            if let checkpoint {
                for head in checkpoint.heads where !ids.contains(head.chain) && chains == nil {
                    breaks.append(
                        Break(
                            chain: head.chain, seq: head.seq,
                            problem: "the checkpoint has this chain; the database does not"))
                }
                for settled in checkpoint.unaccounted where chains == nil {
                    breaks.append(
                        Break(
                            chain: Self.platform, seq: settled.through,
                            problem:
                                "\(settled.unaccounted) platform numbers between \(settled.from + 1) and \(settled.through) have no event, "
                                + "settled after the chainer had been stopped too long: unlinked events deleted, or rolled back meanwhile"
                        ))
                }
            }
            return Report(
                chains: ids.count, events: events, unlinked: unlinked, oldestUnlinked: oldest, breaks: breaks,
                missing: checkpoint?.missing ?? 0)
        }
    }

    /// The platform chain: events about no practice.
    static let platform = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    private struct ChainResult {
        var events = 0
        var unlinked = 0
        var oldestUnlinked: Date?
        var problem: Break?
    }

    /// Walks one chain in `transaction` (its tenant set) and compares it with every head the log
    /// checkpointed for it (`checkpointed`: position to hash).
    private func verifyChain(
        _ chain: UUID, head: Checkpoint.Head?, checkpointed: [Int64: [UInt8]], _ transaction: Transaction
    ) async throws -> ChainResult {
        let checkpoint = checkpointed.max { $0.key < $1.key }.map {
            Checkpoint.Head(chain: chain, seq: $0.key, hash: $0.value)
        }
        do {
            var result = ChainResult()
            let pending = try await transaction.query(
                "select count(*) as n, min(at) as oldest from enclave.audit_events where tenant_id = $1 and chain_seq is null",
                [chain])
            result.unlinked = Int(try pending.first?.decode(Int64.self, "n") ?? 0)
            result.oldestUnlinked = try pending.first?.decode(Date?.self, "oldest")
            func broken(_ seq: Int64, _ problem: String) -> ChainResult {
                var broken = result
                broken.problem = Break(chain: chain, seq: seq, problem: problem)
                return broken
            }
            // Where the chain starts: position 1 after the zero hash, or after what an authorized
            // retention removed.
            var expectedSeq: Int64 = 1
            var previousHash = [UInt8](repeating: 0, count: 32)
            let retention = try await transaction.query(
                """
                select chain_seq, (details->>'removed_through_seq')::int8 as through, details->>'last_removed_hash' as last_hash,
                       details->>'authorization' as authorization
                from enclave.audit_events where tenant_id = $1 and action = 'audit.retention'
                order by (details->>'removed_through_seq')::int8 desc limit 1
                """,
                [chain]
            )
            if let row = retention.first, let through = try row.decode(Int64?.self, "through"),
                let lastHash = [UInt8](hex: try row.decode(String?.self, "last_hash") ?? "")
            {
                let expected = try key.map {
                    try $0.authenticationCode(
                        version: 1,
                        message: AuditLink.retentionMessage(chain: chain, throughSeq: through, lastHash: lastHash))
                }
                guard let expected else {
                    throw ConfigurationError("verifying a chain that retention shortened needs the audit key")
                }
                guard
                    HMAC.constantTimeEqual(
                        expected, [UInt8](hex: try row.decode(String?.self, "authorization") ?? "") ?? [])
                else {
                    return broken(
                        try row.decode(Int64?.self, "chain_seq") ?? through + 1,
                        "a retention record the audit key did not authorize (forged)")
                }
                expectedSeq = through + 1
                previousHash = lastHash
            }
            var chainerLinked = false
            var after: Int64 = 0
            while true {
                let rows = try await transaction.query(
                    """
                    select \(AuditLink.columns), e.chain_seq, e.link, e.prev_hash, e.hash
                    from enclave.audit_events e where e.tenant_id = $1 and e.chain_seq > $2
                    order by e.chain_seq limit 2000
                    """,
                    [chain, after]
                )
                if rows.isEmpty { break }
                for row in rows {
                    let position = try row.decode(Int64.self, "chain_seq")
                    after = position
                    result.events += 1
                    if position != expectedSeq {
                        return broken(
                            expectedSeq,
                            position > expectedSeq
                                ? "event missing (deleted): the next event is seq \(position)" : "event out of order")
                    }
                    guard try row.decode([UInt8].self, "prev_hash") == previousHash else {
                        return broken(position, "does not link to the event before it (inserted, deleted or reordered)")
                    }
                    let event = try AuditLink.Event(row)
                    let hash = try row.decode([UInt8].self, "hash")
                    switch try row.decode(Int16.self, "link") {
                    case 1:
                        // Migration 0013 ended SHA-256 links; the chainer checkpoints every head
                        // when it starts. One after a chainer link or a checkpointed head is forged.
                        if chainerLinked || (checkpoint.map { position > $0.seq } ?? false) {
                            return broken(position, "a SHA-256 link after the chainer took over (forged)")
                        }
                        guard SHA256.hash(previousHash + AuditLink.canonicalV1(event, chainSeq: position)) == hash
                        else { return broken(position, "content does not match its hash (edited)") }
                    default:
                        guard let key else {
                            throw ConfigurationError("verifying links the chainer made needs the audit key")
                        }
                        let expected = try AuditLink.hash(event, chainSeq: position, previous: previousHash, key: key)
                        guard HMAC.constantTimeEqual(expected, hash) else {
                            return broken(
                                position,
                                "content does not match its authentication code (edited, or forged without the key)")
                        }
                        chainerLinked = true
                    }
                    if let saved = checkpointed[position], saved != hash {
                        return broken(position, "differs from the checkpoint log (rewritten)")
                    }
                    previousHash = hash
                    expectedSeq = position + 1
                }
            }
            let last = expectedSeq - 1
            if let head, head.seq != last || (last > 0 && head.hash != previousHash) {
                return broken(
                    min(head.seq, last + 1),
                    "the chain ends at seq \(last) but its head says \(head.seq) (truncated or forged tail)")
            }
            if let checkpoint {
                if last < checkpoint.seq {
                    return broken(
                        last + 1,
                        "the chain ends at seq \(last) but the checkpoint saw seq \(checkpoint.seq) (truncated)")
                }
                // Every checkpointed position the walk reached was compared with the log's hash;
                // those retention removed since cannot be, and need not be.
            }
            if let oldest = result.oldestUnlinked,
                Date().timeIntervalSince(oldest) > Double(maxUnlinkedAge.components.seconds)
            {
                return broken(
                    last + 1,
                    "\(result.unlinked) events not linked after \(maxUnlinkedAge.components.seconds) s: is `enclave audit chain` running?"
                )
            }
            return result
        }
    }
}
