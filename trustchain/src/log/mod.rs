//! The transparency log's Merkle tree: RFC 9162 (Certificate Transparency
//! 2.0) structure over SHA3-256.
//!
//! Everything here is pure and synchronous; storing leaves, signing tree
//! heads and serving proofs belong to the callers.
//!
//! - [`MerkleTree`] is what the log itself keeps: every complete subtree hash,
//!   so that appends cost amortised O(1) hashes and the root of any historical
//!   head, inclusion proofs and consistency proofs cost O(log n).
//! - [`verify_inclusion`], [`root_from_inclusion`] and [`verify_consistency`]
//!   are the RFC 9162 verification algorithms that clients and witnesses run.
//! - [`Frontier`] is the compact range a witness keeps per log: the roots of
//!   the perfect subtrees covering the prefix it has checked, O(log n) hashes,
//!   enough to extend the tree and recompute its root without the leaves.
//!
//! Leaves are hashed as `H(0x00 || entry)` and interior nodes as
//! `H(0x01 || left || right)`; the prefixes keep a leaf from ever being
//! mistaken for an interior node (second-preimage resistance). The empty
//! tree's root is `H()`, the SHA3-256 of no bytes.

mod frontier;
mod proof;
mod tree;

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod frontier_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use frontier::Frontier;
pub use proof::{root_from_inclusion, verify_consistency, verify_inclusion};
pub use tree::MerkleTree;

/// A SHA3-256 digest: a leaf hash, an interior node or a tree root.
pub type Hash = [u8; 32];

/// The longest proof accepted, checked before any hashing so that a hostile
/// peer cannot make a verifier hash an unbounded list. A tree of at most
/// 2^63 leaves needs at most 63 hashes for an inclusion proof and 64 for a
/// consistency proof (one per level, plus the old root when it is not itself
/// a node of the new tree).
pub const MAX_PROOF_LEN: usize = 64;

/// The root of the tree with no leaves, `SHA3-256()` as RFC 9162 defines it.
pub fn empty_root() -> Hash {
    stoq::crypto::sha3_256(&[])
}

/// Why a proof could not be produced or did not verify, or why an encoded
/// frontier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index does not name a leaf of the tree (or range) in question.
    #[error("leaf index {index} is outside a tree of {size} leaves (indexes start at 0)")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The number of leaves it had to be smaller than.
        size: u64,
    },
    /// The leaf index lies outside the leaf range a proof was asked for.
    #[error("leaf index {index} is outside the leaf range {start}..{end}")]
    IndexOutsideRange {
        /// The index asked for.
        index: u64,
        /// First leaf of the range.
        start: u64,
        /// One past the last leaf of the range.
        end: u64,
    },
    /// A tree size (or range end) beyond the leaves the log holds.
    #[error("tree size {requested} is larger than the log, which holds {available} leaves")]
    SizeOutOfRange {
        /// The size asked for.
        requested: u64,
        /// How many leaves the log actually holds.
        available: u64,
    },
    /// A leaf range whose start lies after its end.
    #[error("leaf range {start}..{end} is backwards: its start is after its end")]
    InvalidRange {
        /// First leaf of the range.
        start: u64,
        /// One past the last leaf of the range.
        end: u64,
    },
    /// A consistency proof asked from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}: a log only grows")]
    OldSizeAfterNew {
        /// The size of the older head.
        old_size: u64,
        /// The size of the newer head.
        new_size: u64,
    },
    /// The proof is longer than [`MAX_PROOF_LEN`]; refused without hashing.
    #[error("proof has {len} hashes, more than the {max} any valid proof needs")]
    ProofTooLong {
        /// The number of hashes received.
        len: usize,
        /// The limit, [`MAX_PROOF_LEN`].
        max: usize,
    },
    /// The proof does not have the number of hashes the sizes require.
    #[error("proof has {got} hashes but these tree sizes need exactly {expected}")]
    WrongProofLength {
        /// The number of hashes the tree shape requires.
        expected: usize,
        /// The number of hashes received.
        got: usize,
    },
    /// An inclusion proof leads to a root other than the tree head's.
    #[error("the inclusion proof leads to a different root: this entry is not at that index in that tree head")]
    RootMismatch,
    /// A consistency proof does not reproduce the older head's root.
    #[error("the consistency proof does not reproduce the old tree head's root: the old head is not a prefix of the new one")]
    OldRootMismatch,
    /// A consistency proof does not reproduce the newer head's root.
    #[error(
        "the consistency proof does not reproduce the new tree head's root: the new head does not extend the old one"
    )]
    NewRootMismatch,
    /// Two heads of the same size with different roots: proof that the log
    /// showed two different histories.
    #[error("two tree heads of size {size} have different roots: the log has forked")]
    Forked {
        /// The size both heads claim.
        size: u64,
    },
    /// A head of size 0 whose root is not the empty tree's root.
    #[error("a tree head of size 0 must carry the empty tree's root (SHA3-256 of no bytes), this one does not")]
    NotEmptyRoot,
    /// An encoded frontier shorter than its fixed header.
    #[error("encoded frontier is {got} bytes long, shorter than its 9-byte header (size and count)")]
    FrontierTruncated {
        /// The number of bytes received.
        got: usize,
    },
    /// An encoded frontier claiming more leaves than any log can hold.
    #[error("encoded frontier claims {size} leaves, more than the 2^63 a log can hold")]
    FrontierSizeTooLarge {
        /// The size the encoding claims.
        size: u64,
    },
    /// An encoded frontier whose hash count does not match its size: a
    /// frontier of `size` leaves holds one hash per set bit of `size`.
    #[error("encoded frontier of {size} leaves lists {count} subtree hashes but must list exactly {expected}")]
    FrontierCount {
        /// The size the encoding claims.
        size: u64,
        /// The number of hashes it claims.
        count: u8,
        /// The number of hashes that size requires.
        expected: u32,
    },
    /// An encoded frontier whose byte length does not match its count
    /// (truncated hashes or trailing bytes).
    #[error("encoded frontier is {got} bytes long but its header requires exactly {expected}")]
    FrontierLength {
        /// The length the header implies.
        expected: usize,
        /// The number of bytes received.
        got: usize,
    },
}
