import Foundation

/// Chain heads as a checkpoint log last saw them: for each chain, the position and hash of its
/// last link. `AuditVerifier` checks that every chain still reaches that link unchanged, which
/// catches a tail cut off (and the head fixed up) after the checkpoint.
public struct Checkpoint: Sendable {
    /// One chain's last link.
    public struct Head: Sendable, Equatable {
        public let chain: UUID
        public let seq: Int64
        public let hash: [UInt8]

        public init(chain: UUID, seq: Int64, hash: [UInt8]) {
            self.chain = chain
            self.seq = seq
            self.hash = hash
        }
    }

    /// What one chainer pass settled of the platform sequence: every number in (`from`,
    /// `through`] had an event, which it linked or refused, except `missing` numbers, which no
    /// event holds (a transaction rolled back, or an unlinked event was deleted). `unaccounted`
    /// of them (all or none) were settled after the chainer had been stopped longer than its
    /// window, when a deletion cannot be told from a rollback.
    public struct Accounting: Sendable, Equatable {
        public let from: Int64
        public let through: Int64
        public let missing: Int64
        public let unaccounted: Int64

        public init(from: Int64, through: Int64, missing: Int64, unaccounted: Int64) {
            (self.from, self.through, self.missing, self.unaccounted) = (from, through, missing, unaccounted)
        }
    }

    /// When the newest record that contributed was written.
    public let createdAt: Date
    /// Each chain's latest head.
    public let heads: [Head]
    /// Every head the log ever recorded, by chain and position: verify checks each one.
    public let history: [UUID: [Int64: [UInt8]]]
    /// The platform sequence settled so far, the numbers missing in it, and the passes whose
    /// missing numbers are unaccounted for.
    public let through: Int64
    public let missing: Int64
    public let unaccounted: [Accounting]

    public init(
        createdAt: Date = Date(), heads: [Head], history: [UUID: [Int64: [UInt8]]]? = nil, through: Int64 = 0,
        missing: Int64 = 0, unaccounted: [Accounting] = []
    ) {
        self.createdAt = createdAt
        self.heads = heads
        self.history =
            history
            ?? Dictionary(grouping: heads, by: \.chain).mapValues {
                Dictionary(uniqueKeysWithValues: $0.map { ($0.seq, $0.hash) })
            }
        self.through = through
        self.missing = missing
        self.unaccounted = unaccounted
    }
}
