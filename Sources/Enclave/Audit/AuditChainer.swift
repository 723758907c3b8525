import Foundation
import Postgres
import Sealing
import Synchronization

/// Links audit events into their chains, in batches, off the path of the accesses they record.
///
/// An access writes its event unlinked, in its own transaction and without a lock (sql/
/// functions/audit.sql). The chainer, as the maintenance role with the audit key, links them in
/// the order of their platform number (`seq`), and signs only what could be new:
///
/// - **Settled numbers only.** A pass reads the sequence's last value and waits for the
///   transactions that may still commit a number below it (`audit_horizon`); after that, no
///   event can appear below what it links, so a chain's numbers rise with its positions.
/// - **Forward from the log.** Before it links after a chain's head, the head must extend the
///   one the checkpoint log holds (same or later position, the checkpointed event still there
///   with its hash). A head that went back is an alert, and nothing is linked after it.
/// - **New events.** An event whose number is not above its chain's last linked one, or that
///   was written more than `window` ago, is refused (an alert; verify reports it unlinked).
/// - **Every number accounted.** Each pass records in the log the numbers it settled and how
///   many had no event (rolled back, or deleted). Numbers missing after the chainer was
///   stopped longer than `window` cannot be told from deletions: they are recorded as
///   unaccounted, and verify reports them.
///
/// After each batch commits, the heads that moved are appended to the checkpoint log. A
/// transaction-scoped advisory lock lets one chainer work at a time (and works behind a
/// transaction-mode pooler); another finds nothing to do. The database lock is taken before the
/// log's file lock, never after.
public struct AuditChainer: Sendable {
    /// What a pass did.
    public struct Summary: Sendable, Equatable {
        public var linked = 0
        public var chains = 0
        /// Heads appended to the checkpoint log.
        public var checkpointed = 0
        /// Events not signed: too old, not new in their chain, or after a head that went back.
        public var refused = 0
        /// What an operator must look into, one line each (no event content).
        public var alerts: [String] = []

        public init() {}
    }

    public let maintenance: MaintenanceContext
    let key: MasterKeyFile
    let log: CheckpointLog?
    /// Events per transaction.
    public let batchSize: Int
    /// The oldest an unlinked event may be and still be signed; also the longest the chainer
    /// may have been stopped for the numbers missing meanwhile to count as rolled back.
    public let window: Duration
    /// How long a pass waits for open transactions before it links nothing this time.
    public let settleTimeout: Duration

    /// What this chainer settled last, and when.
    private final class Progress: Sendable {
        let state = Mutex<(through: Int64, at: Date?)>((0, nil))
    }
    private let progress = Progress()

    public init(
        maintenance: MaintenanceContext, key: MasterKeyFile, log: CheckpointLog?, batchSize: Int = 5_000,
        window: Duration = .seconds(300), settleTimeout: Duration = .seconds(10)
    ) {
        self.maintenance = maintenance
        self.key = key
        self.log = log
        self.batchSize = max(1, min(batchSize, 50_000))
        self.window = window
        self.settleTimeout = settleTimeout
    }

    /// Links every event that was unlinked when the pass began (and any that arrive meanwhile, up
    /// to a point), then checkpoints.
    public func linkPending() async throws -> Summary {
        var summary = Summary()
        var chains = Set<UUID>()
        while true {
            let batch = try await linkBatch()
            summary.linked += batch.linked
            summary.refused += batch.refused
            summary.alerts += batch.alerts
            chains.formUnion(batch.heads.map(\.chain))
            if let log, !batch.heads.isEmpty || batch.settled != nil {
                summary.checkpointed += try log.append(batch.heads, settled: batch.settled)
            }
            if !batch.full || summary.linked >= 20 * batchSize { break }
        }
        summary.chains = chains.count
        return summary
    }

    /// Appends every chain head the database holds that moves its chain forward in the log (after
    /// a crash between a batch's commit and its checkpoint, or for `enclave audit checkpoint`).
    /// A head that does not extend the log's is not appended: it is an alert.
    @discardableResult
    public func checkpointAllHeads() async throws -> Summary {
        var summary = Summary()
        guard let log else { return summary }
        let logged = try log.current().heads
        let (heads, behind) = try await maintenance.pool.withTransaction { transaction in
            let heads = try await transaction.query(
                "select chain_id, seq, hash from enclave_private.audit_chain_heads()"
            )
            .map {
                Checkpoint.Head(
                    chain: try $0.decode(UUID.self, "chain_id"), seq: try $0.decode(Int64.self, "seq"),
                    hash: try $0.decode([UInt8].self, "hash"))
            }
            .filter { $0.seq > 0 }
            return (heads, try await Self.behind(heads, logged: logged, transaction))
        }
        summary.alerts = behind.values.sorted()
        summary.checkpointed = try log.append(heads.filter { behind[$0.chain] == nil })
        return summary
    }

    /// The chains whose database head does not extend the head the log holds, with why.
    private static func behind(_ heads: [Checkpoint.Head], logged: [UUID: Checkpoint.Head], _ transaction: Transaction)
        async throws -> [UUID: String]
    {
        let checked = heads.compactMap { head in logged[head.chain].map { (head, $0) } }
        guard !checked.isEmpty else { return [:] }
        let found = try await transaction.query(
            "select chain_id, hash from enclave_private.audit_links_at($1, $2)",
            [checked.map(\.1.chain), checked.map(\.1.seq)]
        )
        .reduce(into: [UUID: [UInt8]]()) {
            $0[try $1.decode(UUID.self, "chain_id")] = try $1.decode([UInt8].self, "hash")
        }
        var behind: [UUID: String] = [:]
        for (head, saved) in checked where head.seq < saved.seq || found[head.chain] != saved.hash {
            behind[head.chain] =
                "chain \(head.chain.uuidString.lowercased()): its head (seq \(head.seq)) does not extend the checkpointed seq \(saved.seq)"
                + " (truncated or rewritten): nothing linked after it"
        }
        return behind
    }

    private struct Batch {
        var linked = 0
        var refused = 0
        /// The batch was as large as allowed: more may be waiting.
        var full = false
        var heads: [Checkpoint.Head] = []
        var settled: Checkpoint.Accounting?
        var alerts: [String] = []
        var through: Int64?
    }

    private func linkBatch() async throws -> Batch {
        let started = Date()
        let batch = try await maintenance.pool.withTransaction { transaction -> Batch in
            let locked = try await transaction.query(
                "select pg_try_advisory_xact_lock(hashtext('enclave.audit.chainer')::int8) as locked")
            guard try locked.first?.decode(Bool.self, "locked") == true else { return Batch() }
            guard
                let horizon = try await transaction.query(
                    "select last_seq, linked_through, open_transactions from enclave_private.audit_horizon()"
                ).first
            else { return Batch() }
            let last = try horizon.decode(Int64.self, "last_seq")
            let open = try horizon.decode([String].self, "open_transactions")
            if !open.isEmpty, try await !settled(open, transaction) { return Batch() }
            let logged = try log?.current()
            let previous = progress.state.withLock { $0 }
            let from = max(try horizon.decode(Int64.self, "linked_through"), logged?.through ?? 0, previous.through)
            guard last > from else { return Batch(through: from) }
            let rows = try await transaction.query(
                "select * from enclave_private.unlinked_audit_events($1::int4, $2, $3)", [Int64(batchSize), from, last])
            var batch = Batch(full: rows.count == batchSize)
            // A full batch settles the numbers up to its last event; the rest wait for the next.
            let through = try batch.full ? rows.last?.decode(Int64.self, "seq") ?? last : last
            batch.through = through

            // Each chain's head, and whether it extends the log's.
            var heads: [UUID: (head: Checkpoint.Head, eventSeq: Int64)] = [:]
            for row in rows {
                let chain = try row.decode(UUID.self, "tenant_id")
                if heads[chain] == nil {
                    heads[chain] = (
                        Checkpoint.Head(
                            chain: chain, seq: try row.decode(Int64.self, "head_seq"),
                            hash: try row.decode([UInt8].self, "head_hash")),
                        try row.decode(Int64.self, "head_event_seq")
                    )
                }
            }
            let behind = try await Self.behind(heads.values.map(\.head), logged: logged?.heads ?? [:], transaction)
            batch.alerts += behind.values.sorted()

            var refusals: [String: Int] = [:]
            let oldest = Int64((started.timeIntervalSince1970 - Double(window.components.seconds)) * 1_000_000)
            var chains: [UUID] = [], seqs: [Int64] = [], positions: [Int64] = []
            var previousHashes: [String] = [], hashes: [String] = []
            var moved = Set<UUID>()
            for row in rows {
                let event = try AuditLink.Event(row)
                guard let (head, eventSeq) = heads[event.chain] else { continue }
                let reason: String? =
                    behind[event.chain] != nil
                    ? "after a head that went back"
                    : event.seq <= eventSeq
                        ? "numbered below the chain's last linked event"
                        : event.atMicros < oldest ? "written more than \(window.components.seconds) s ago" : nil
                if let reason {
                    refusals["chain \(event.chain.uuidString.lowercased()): events \(reason)", default: 0] += 1
                    continue
                }
                let position = head.seq + 1
                let hash = try AuditLink.hash(event, chainSeq: position, previous: head.hash, key: key)
                chains.append(event.chain)
                seqs.append(event.seq)
                positions.append(position)
                previousHashes.append(head.hash.hex)
                hashes.append(hash.hex)
                heads[event.chain] = (Checkpoint.Head(chain: event.chain, seq: position, hash: hash), event.seq)
                moved.insert(event.chain)
            }
            batch.refused = refusals.values.reduce(0, +)
            batch.alerts += refusals.sorted { $0.key < $1.key }.map { "\($0.value) not signed, \($0.key)" }
            if !chains.isEmpty {
                try await transaction.query(
                    "select enclave_private.link_audit_events($1, $2, $3, $4, $5)",
                    [chains, seqs, positions, previousHashes, hashes])
            }
            batch.linked = chains.count
            batch.heads = moved.compactMap { heads[$0]?.head }

            // The numbers settled, and those no event holds.
            let missing = (through - from) - Int64(rows.count)
            let lastSeen = [previous.at, logged?.at].compactMap { $0 }.max()
            let stopped = lastSeen.map { started.timeIntervalSince($0) > Double(window.components.seconds) } ?? false
            let unaccounted = missing > 0 && stopped ? missing : 0
            if unaccounted > 0 {
                batch.alerts.append(
                    "\(unaccounted) numbers between \(from + 1) and \(through) have no event, after the chainer was stopped "
                        + "longer than \(window.components.seconds) s: rolled back, or unlinked events deleted")
            }
            batch.settled = Checkpoint.Accounting(
                from: from, through: through, missing: missing, unaccounted: unaccounted)
            return batch
        }
        // Only what committed moves this chainer on.
        if let through = batch.through { progress.state.withLock { $0 = (max($0.through, through), started) } }
        return batch
    }

    /// Waits until none of `transactions` is open; false when they outlast `settleTimeout`.
    private func settled(_ transactions: [String], _ transaction: Transaction) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + settleTimeout
        while true {
            let open = try await transaction.query(
                "select enclave_private.audit_transactions_open($1) as open", [transactions])
            if try open.first?.decode(Bool.self, "open") != true { return true }
            if clock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
