//! The log's own tree: every complete aligned subtree hash kept in memory.

use std::fmt;

use stoq::crypto::{merkle_leaf_hash, merkle_node_hash};

use super::{empty_root, Hash, ProofError};

/// The largest power of two strictly smaller than `n`, RFC 9162's split
/// point `k`. Only meaningful for `n >= 2`.
pub(super) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// Append-only tree that keeps every level in memory so proofs are O(log n)
/// lookups.
///
/// `levels[h][i]` is the hash of the perfect subtree of `2^h` leaves starting
/// at leaf `i * 2^h`; a node is stored as soon as all its leaves exist, which
/// costs about two hashes per leaf. Any RFC 9162 subtree of a prefix
/// `D[0:n]` whose size is a power of two is one of these aligned nodes, so
/// roots and proofs for every historical size are a walk down the stored
/// nodes rather than a pass over the leaves.
#[derive(Clone)]
pub struct MerkleTree {
    /// Never empty: `levels[0]` holds the leaf hashes even when there are none,
    /// so the size is always `levels[0].len()`.
    levels: Vec<Vec<Hash>>,
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MerkleTree {
    // The levels of a large log are megabytes of hashes; nobody wants them in
    // a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerkleTree")
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            levels: vec![Vec::new()],
        }
    }

    /// Rebuilds the tree from the leaf hashes in log order, as at startup from
    /// the stored leaves; `n - 1` node hashes for `n` leaves.
    pub fn from_leaf_hashes<I: IntoIterator<Item = Hash>>(leaves: I) -> Self {
        let mut levels = vec![leaves.into_iter().collect::<Vec<Hash>>()];
        // Building level by level rather than pushing one leaf at a time sizes
        // each level exactly, so a rebuilt log does not carry spare capacity.
        while let Some(below) = levels.last() {
            if below.len() < 2 {
                break;
            }
            let above: Vec<Hash> = below
                .chunks_exact(2)
                .map(|pair| merkle_node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// Appends a leaf given its leaf hash (`H(0x00 || entry)`) and returns its
    /// index. Costs one hash per subtree the leaf completes: amortised one.
    pub fn push_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let mut carry = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(carry);
            // An even length means the node just pushed is a right child whose
            // sibling is complete: their parent is now complete too.
            if row.len() % 2 != 0 {
                break;
            }
            let n = row.len();
            carry = merkle_node_hash(&row[n - 2], &row[n - 1]);
            level += 1;
        }
        index
    }

    /// Appends an entry, hashing it as a leaf, and returns its index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.push_leaf_hash(merkle_leaf_hash(entry))
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// The leaf hash at `index`, if there is such a leaf.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        let index = usize::try_from(index).ok()?;
        self.levels.first()?.get(index).copied()
    }

    /// The root of the whole tree, `MTH(D[0:size])`.
    pub fn root(&self) -> Hash {
        self.mth(0, self.size())
    }

    /// The root of the first `size` leaves: the root of the historical tree
    /// head of that size.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(self.mth(0, size))
    }

    /// `MTH(D[start:end])`: the root the leaves `start..end` would have as a
    /// tree of their own, as for the root of one batch of entries.
    ///
    /// O(log n) when `start` is a multiple of a large power of two; otherwise
    /// the subtrees are not aligned with stored nodes and the cost grows to
    /// O(end - start) hashes at worst.
    pub fn range_root(&self, start: u64, end: u64) -> Result<Hash, ProofError> {
        self.check_range(start, end)?;
        Ok(self.mth(start, end))
    }

    /// RFC 9162 section 2.1.3.1 `PATH(index, D[0:size])`: the inclusion proof
    /// of leaf `index` in the tree head of `size` leaves, leaf side first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.range_inclusion_proof(index, 0, size)
    }

    /// `PATH(index - start, D[start:end])`: the inclusion proof of leaf
    /// `index` in the tree formed by the leaves `start..end` alone; verify it
    /// with index `index - start` and size `end - start` against
    /// [`range_root`](Self::range_root).
    pub fn range_inclusion_proof(&self, index: u64, start: u64, end: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_range(start, end)?;
        if index < start || index >= end {
            return Err(if start == 0 {
                ProofError::IndexOutOfRange { index, size: end }
            } else {
                ProofError::IndexOutsideRange { index, start, end }
            });
        }
        // Walk down from the root of the range collecting the sibling of each
        // subtree that contains the leaf; the RFC lists them leaf side first.
        let (mut lo, mut hi) = (start, end);
        let mut path = Vec::new();
        while hi - lo > 1 {
            let mid = lo + split_point(hi - lo);
            if index < mid {
                path.push(self.mth(mid, hi));
                hi = mid;
            } else {
                path.push(self.mth(lo, mid));
                lo = mid;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// RFC 9162 section 2.1.4.1 `PROOF(old_size, D[0:new_size])`: proves that
    /// the head of `old_size` leaves is a prefix of the head of `new_size`.
    ///
    /// The RFC defines proofs for `0 < old_size < new_size`; for
    /// `old_size == 0` or `old_size == new_size` the proof is empty, which is
    /// what [`verify_consistency`](super::verify_consistency) expects.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        if old_size > new_size {
            return Err(ProofError::OldSizeAfterNew { old_size, new_size });
        }
        self.check_size(new_size)?;
        let mut proof = Vec::new();
        if old_size == 0 || old_size == new_size {
            return Ok(proof);
        }
        // SUBPROOF(m, D[lo:hi], whole) unrolled: `m` stays relative to `lo`,
        // and `whole` says the old tree is still exactly a subtree the
        // verifier knows the root of (so that root is not sent).
        let (mut lo, mut hi, mut m, mut whole) = (0, new_size, old_size, true);
        loop {
            let n = hi - lo;
            if m == n {
                if !whole {
                    proof.push(self.mth(lo, hi));
                }
                break;
            }
            let k = split_point(n);
            if m <= k {
                proof.push(self.mth(lo + k, hi));
                hi = lo + k;
            } else {
                proof.push(self.mth(lo, lo + k));
                lo += k;
                m -= k;
                whole = false;
            }
        }
        proof.reverse();
        Ok(proof)
    }

    /// The stored perfect subtree of `2^level` leaves starting at leaf
    /// `index << level`, if all its leaves exist.
    pub(super) fn stored_node(&self, level: u32, index: u64) -> Option<Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let available = self.size();
        if size > available {
            return Err(ProofError::SizeOutOfRange {
                requested: size,
                available,
            });
        }
        Ok(())
    }

    fn check_range(&self, start: u64, end: u64) -> Result<(), ProofError> {
        if start > end {
            return Err(ProofError::InvalidRange { start, end });
        }
        self.check_size(end)
    }

    /// `MTH(D[lo:hi])` for `lo <= hi <= size`, using a stored node wherever
    /// the RFC's subtree is an aligned perfect one. Starting from 0 every
    /// perfect subtree on the way is aligned and only the right edge is
    /// recomputed: O(log n). Recursion depth is at most 64 (sizes halve).
    fn mth(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && lo % n == 0 {
            if let Some(node) = self.stored_node(n.ilog2(), lo / n) {
                return node;
            }
        }
        if n == 1 {
            // Unreachable for a checked range (a single leaf is always stored);
            // the empty root keeps this total without panicking.
            return empty_root();
        }
        let mid = lo + split_point(n);
        merkle_node_hash(&self.mth(lo, mid), &self.mth(mid, hi))
    }
}
