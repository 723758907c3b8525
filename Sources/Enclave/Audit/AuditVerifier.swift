import Foundation
import Postgres
import Sealing

/// Walks audit chains and finds the first broken link of each: an edited, deleted, inserted or
/// reordered event, or (with a checkpoint) a truncated tail.
public struct AuditVerifier: Sendable {
    /// A broken link: the chain, the sequence number where it breaks, and what is wrong.
    public struct Break: Sendable, Equatable, CustomStringConvertible {
        public let chain: UUID
        public let seq: Int64
        public let problem: String
        public var description: String { "chain \(chain.uuidString.lowercased()) seq \(seq): \(problem)" }
    }

    /// What a run checked and found.
    public struct Report: Sendable {
        public let chains: Int
        public let events: Int
        public let breaks: [Break]
    }

    public let maintenance: MaintenanceContext

    public init(maintenance: MaintenanceContext) {
        self.maintenance = maintenance
    }

    /// Every chain's head as the database keeps it.
    public func heads() async throws -> [Checkpoint.Head] {
        try await maintenance.pool.query("select chain_id, seq, hash from enclave_private.audit_chain_heads()").map {
            Checkpoint.Head(
                chain: try $0.decode(UUID.self, "chain_id"), seq: try $0.decode(Int64.self, "seq"),
                hash: try $0.decode([UInt8].self, "hash"))
        }
    }

    /// Verifies `chains` (default: every chain with a head, and every practice).
    public func verify(chains: [UUID]? = nil, checkpoint: Checkpoint? = nil) async throws -> Report {
        let heads = try await heads()
        var ids: [UUID]
        if let chains {
            ids = chains
        } else {
            ids = Array(Set(heads.map(\.chain)).union(try await maintenance.tenantIDs()))
                .sorted { $0.uuidString < $1.uuidString }
        }
        var breaks: [Break] = []
        var events = 0
        for chain in ids {
            let result = try await verifyChain(
                chain, head: heads.first { $0.chain == chain },
                checkpoint: checkpoint?.heads.first { $0.chain == chain })
            events += result.events
            if let problem = result.problem { breaks.append(problem) }
        }
        if let checkpoint {
            for head in checkpoint.heads where !ids.contains(head.chain) && chains == nil {
                breaks.append(
                    Break(
                        chain: head.chain, seq: head.seq,
                        problem: "the checkpoint has this chain; the database does not"))
            }
        }
        return Report(chains: ids.count, events: events, breaks: breaks)
    }

    private func verifyChain(_ chain: UUID, head: Checkpoint.Head?, checkpoint: Checkpoint.Head?) async throws
        -> (events: Int, problem: Break?)
    {
        try await maintenance.withTenant(chain) { transaction in
            // Where the chain starts: seq 1 after the zero hash, or after what retention removed.
            var expectedSeq: Int64 = 1
            var previousHash = [UInt8](repeating: 0, count: 32)
            let retention = try await transaction.query(
                """
                select (details->>'removed_through_seq')::int8 as through, details->>'last_removed_hash' as last_hash
                from enclave.audit_events where tenant_id = $1 and action = 'audit.retention'
                order by (details->>'removed_through_seq')::int8 desc limit 1
                """,
                [chain]
            )
            if let row = retention.first, let through = try row.decode(Int64?.self, "through"),
                let hex = try row.decode(String?.self, "last_hash")
            {
                expectedSeq = through + 1
                previousHash = hexBytes(hex)
            }
            var count = 0
            var after: Int64 = 0
            while true {
                let rows = try await transaction.query(
                    """
                    select seq, (extract(epoch from at) * 1000000)::int8 as at_micros, actor_id::text as actor,
                           actor_kind, session_id::text as session, action, object_type, object_id, outcome, reason,
                           host(client_ip) as ip, user_agent, request_id, details::text as details, prev_hash, hash
                    from enclave.audit_events where tenant_id = $1 and seq > $2 order by seq limit 2000
                    """,
                    [chain, after]
                )
                if rows.isEmpty { break }
                for row in rows {
                    let seq = try row.decode(Int64.self, "seq")
                    after = seq
                    count += 1
                    if seq != expectedSeq {
                        return (
                            count,
                            Break(
                                chain: chain, seq: expectedSeq,
                                problem: seq > expectedSeq
                                    ? "event missing (deleted): the next event is seq \(seq)"
                                    : "event out of order")
                        )
                    }
                    let prev = try row.decode([UInt8].self, "prev_hash")
                    if prev != previousHash {
                        return (
                            count,
                            Break(
                                chain: chain, seq: seq,
                                problem: "does not link to the event before it (inserted, deleted or reordered)")
                        )
                    }
                    let canonical = Self.canonical(
                        chain: chain, seq: seq, atMicros: try row.decode(Int64.self, "at_micros"),
                        fields: [
                            try row.decode(String?.self, "actor"), try row.decode(String?.self, "actor_kind"),
                            try row.decode(String?.self, "session"), try row.decode(String?.self, "action"),
                            try row.decode(String?.self, "object_type"), try row.decode(String?.self, "object_id"),
                            try row.decode(String?.self, "outcome"), try row.decode(String?.self, "reason"),
                            try row.decode(String?.self, "ip"), try row.decode(String?.self, "user_agent"),
                            try row.decode(String?.self, "request_id"), try row.decode(String?.self, "details"),
                        ])
                    let hash = try row.decode([UInt8].self, "hash")
                    if SHA256.hash(previousHash + canonical) != hash {
                        return (
                            count, Break(chain: chain, seq: seq, problem: "content does not match its hash (edited)")
                        )
                    }
                    previousHash = hash
                    expectedSeq = seq + 1
                }
            }
            let last = expectedSeq - 1
            if let head, head.seq != last || (last > 0 && head.hash != previousHash) {
                return (
                    count,
                    Break(
                        chain: chain, seq: min(head.seq, last + 1),
                        problem:
                            "the chain ends at seq \(last) but its head says \(head.seq) (truncated or forged tail)")
                )
            }
            if let checkpoint {
                if last < checkpoint.seq {
                    return (
                        count,
                        Break(
                            chain: chain, seq: last + 1,
                            problem:
                                "the chain ends at seq \(last) but the checkpoint saw seq \(checkpoint.seq) (truncated)"
                        )
                    )
                }
                let atCheckpoint = try await transaction.query(
                    "select hash from enclave.audit_events where tenant_id = $1 and seq = $2", [chain, checkpoint.seq])
                if try atCheckpoint.first?.decode([UInt8].self, "hash") != checkpoint.hash {
                    return (
                        count,
                        Break(chain: chain, seq: checkpoint.seq, problem: "differs from the checkpoint (rewritten)")
                    )
                }
            }
            return (count, nil)
        }
    }

    /// The canonical bytes of an event, exactly as `enclave_private.audit_canonical` builds them.
    static func canonical(chain: UUID, seq: Int64, atMicros: Int64, fields: [String?]) -> [UInt8] {
        func field(_ value: String?) -> String {
            guard let value else { return "-1:" }
            return "\(value.utf8.count):\(value)"
        }
        var text =
            "enclave.audit.v1" + field(chain.uuidString.lowercased()) + field(String(seq)) + field(String(atMicros))
        for value in fields { text += field(value) }
        return Array(text.utf8)
    }
}

/// The bytes of hex text, or none when the text is not hex (then no comparison can match).
func hexBytes(_ hex: String) -> [UInt8] { [UInt8](hex: hex) ?? [] }

/// Chain heads at a moment, authenticated with an HMAC key kept outside the database, so that
/// a later `verify --checkpoint` catches a tail that was cut off or rewritten since.
public struct Checkpoint: Sendable, Codable {
    /// One chain's last sequence number and hash.
    public struct Head: Sendable, Codable, Equatable {
        public let chain: UUID
        public let seq: Int64
        public let hash: [UInt8]
    }

    public let createdAt: Date
    public let heads: [Head]

    private struct File: Codable {
        var version: Int
        var createdAt: Date
        var chains: [Entry]
        var mac: String
    }

    private struct Entry: Codable {
        var chain: String
        var seq: Int64
        var hash: String
    }

    public init(createdAt: Date = Date(), heads: [Head]) {
        self.createdAt = createdAt
        self.heads = heads
    }

    /// The checkpoint as JSON, with its HMAC under `key`'s version 1.
    public func encoded(key: MasterKeyFile) throws -> Data {
        let file = File(
            version: 1, createdAt: createdAt,
            chains: heads.map { Entry(chain: $0.chain.uuidString.lowercased(), seq: $0.seq, hash: $0.hash.hex) },
            mac: try Self.mac(heads, createdAt: createdAt, key: key).hex)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(file)
    }

    /// Reads a checkpoint and checks its HMAC; a file changed by anyone without the key is refused.
    public static func decode(_ data: Data, key: MasterKeyFile) throws -> Checkpoint {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let file = try? decoder.decode(File.self, from: data), file.version == 1 else {
            throw ConfigurationError("the checkpoint file is not an Enclave audit checkpoint")
        }
        let heads = try file.chains.map { entry -> Head in
            guard let chain = UUID(uuidString: entry.chain) else {
                throw ConfigurationError("the checkpoint file is damaged")
            }
            return Head(chain: chain, seq: entry.seq, hash: hexBytes(entry.hash))
        }
        guard HMAC.constantTimeEqual(try mac(heads, createdAt: file.createdAt, key: key), hexBytes(file.mac)) else {
            throw ConfigurationError("the checkpoint's authentication code does not match: altered, or another key")
        }
        return Checkpoint(createdAt: file.createdAt, heads: heads)
    }

    private static func mac(_ heads: [Head], createdAt: Date, key: MasterKeyFile) throws -> [UInt8] {
        var text = "enclave.audit.checkpoint.v1\n\(Int64(createdAt.timeIntervalSince1970))\n"
        for head in heads.sorted(by: { $0.chain.uuidString < $1.chain.uuidString }) {
            text += "\(head.chain.uuidString.lowercased()):\(head.seq):\(head.hash.hex)\n"
        }
        return try key.authenticationCode(version: 1, message: Array(text.utf8))
    }
}
