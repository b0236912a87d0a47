//! The chain's authenticated key-value state.
//!
//! A Jellyfish Merkle tree (the `jmt` crate) hashed with SHA3-256, stored
//! in tables of the node's redb database so that a block, its receipts and
//! the state it produces commit in one write transaction. Versions are
//! block heights.
//!
//! The life of a block's state:
//! 1. [`StateStore::stage`] computes the new root and the tree nodes from
//!    the committed previous version, without writing;
//! 2. [`StateStore::write`] puts the staged nodes and values into the
//!    caller's write transaction, which the caller commits with the block;
//! 3. [`StateStore::prune`] later drops what only old versions needed.
//!
//! Reads: [`StateStore::get`] answers from a values table without walking
//! the tree; [`StateStore::get_with_proof`] walks it and returns a
//! [`StateProof`] of inclusion or exclusion that a light client checks
//! against a root with [`StateProof::verify`]. Whole states move between
//! nodes as snapshots ([`StateStore::export_snapshot`],
//! [`StateStore::import_snapshot`]).

mod proof;
mod prune;
mod reader;
mod snapshot;
mod store;
mod tables;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests_snapshot;
#[cfg(test)]
mod tests_store;

pub use proof::{StateProof, MAX_PROOF_LEN};
pub use prune::PruneStats;
pub use reader::{PendingReader, StateReader};
pub use snapshot::{SnapshotInfo, MAX_SNAPSHOT_CHUNK_BYTES};
pub use store::{StagedState, StateStore};

use crate::codec::Hash;
use crate::error::Error;

/// The hash of the tree: SHA3-256. jmt implements its `SimpleHasher`
/// for every 32-byte `digest::Digest`, so the `sha3` type plugs in as is.
pub type StateHasher = sha3::Sha3_256;

/// The tree specialised to our hasher.
type Tree<'a, R> = jmt::JellyfishMerkleTree<'a, R, StateHasher>;

/// The root of a tree that holds nothing (jmt's placeholder hash; a test
/// checks it against jmt's constant).
pub const EMPTY_ROOT: Hash = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// The longest key the state accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The longest value the state accepts, in bytes. Bounded so that a
/// snapshot entry can be read with a bounded allocation.
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// The tree's key for a state key: its SHA3-256.
pub fn key_hash(key: &[u8]) -> Hash {
    jmt::KeyHash::with::<StateHasher>(key).0
}

/// A database failure as our error (the message is all callers can use).
fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

/// A failure inside jmt. Its errors are `anyhow`; they mean a missing or
/// undecodable node, i.e. a store that is damaged or a version pruned
/// under our feet.
fn tree_err(e: anyhow::Error) -> Error {
    Error::Store(format!("state tree: {e:#}"))
}
