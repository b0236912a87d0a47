//! The compact range a witness keeps per log instead of the whole tree.

use stoq::crypto::merkle_node_hash;

use super::{empty_root, Hash, MerkleTree, ProofError};

/// Length of the fixed header of [`Frontier::to_bytes`]: size and count.
const HEADER_LEN: usize = 9;

/// The largest size an encoded frontier may claim; far beyond any real log,
/// and it keeps `size + 1` from ever overflowing.
const MAX_SIZE: u64 = 1 << 63;

/// The compact range (the roots of the perfect subtrees covering a prefix of
/// the log) that a witness keeps per log instead of the whole tree: it can
/// append leaf hashes and compute the root itself.
///
/// A prefix of `size` leaves splits into one perfect, aligned subtree per set
/// bit of `size`, largest first; those at most 64 hashes are all that the
/// root and every later append depend on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// Subtree roots, largest (leftmost) first; one per set bit of `size`.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of the first `size` leaves of `tree`, read from its stored
    /// nodes without hashing.
    pub fn from_tree(tree: &MerkleTree, size: u64) -> Result<Self, ProofError> {
        let available = tree.size();
        if size > available {
            return Err(ProofError::SizeOutOfRange {
                requested: size,
                available,
            });
        }
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..u64::BITS).rev() {
            let width = 1u64 << level;
            if size & width == 0 {
                continue;
            }
            // `start` is a sum of larger powers of two, so the subtree is
            // aligned and therefore stored.
            let node = tree
                .stored_node(level, start >> level)
                .ok_or(ProofError::SizeOutOfRange {
                    requested: size,
                    available,
                })?;
            hashes.push(node);
            start += width;
        }
        Ok(Self { size, hashes })
    }

    /// The number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest (leftmost) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash (`H(0x00 || entry)`), merging the subtrees it
    /// completes: amortised one hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        // Each trailing one bit of the size is a subtree of the same width as
        // `carry` waiting for its right sibling.
        let mut pending = self.size;
        while pending & 1 == 1 {
            let Some(left) = self.hashes.pop() else { break };
            carry = merkle_node_hash(&left, &carry);
            pending >>= 1;
        }
        self.hashes.push(carry);
        self.size += 1;
    }

    /// The root of the covered prefix, `MTH(D[0:size])`.
    pub fn root(&self) -> Hash {
        // RFC 9162 splits at the largest power of two, which is exactly the
        // largest subtree here; so the root folds the subtrees from the right.
        let mut subtrees = self.hashes.iter().rev();
        let Some(last) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(*last, |right, left| merkle_node_hash(left, &right))
    }

    /// The encoding `size (u64, big-endian) || count (u8) || hashes`; there is
    /// exactly one encoding per frontier.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 32 * self.hashes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        // At most 64 hashes (one per bit of a u64), so the count fits in a byte.
        out.push(self.hashes.len() as u8);
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes), strictly: the size must be at
    /// most 2^63, the count must be the number of set bits of the size, and
    /// the input must end right after the last hash.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, ProofError> {
        let (Some(size_bytes), Some(&count)) = (buf.first_chunk::<8>(), buf.get(8)) else {
            return Err(ProofError::FrontierTruncated { got: buf.len() });
        };
        let size = u64::from_be_bytes(*size_bytes);
        if size > MAX_SIZE {
            return Err(ProofError::FrontierSizeTooLarge { size });
        }
        let expected_count = size.count_ones();
        if u32::from(count) != expected_count {
            return Err(ProofError::FrontierCount {
                size,
                count,
                expected: expected_count,
            });
        }
        let body = &buf[HEADER_LEN..];
        let expected_len = HEADER_LEN + 32 * usize::from(count);
        if buf.len() != expected_len {
            return Err(ProofError::FrontierLength {
                expected: expected_len,
                got: buf.len(),
            });
        }
        let hashes = body
            .chunks_exact(32)
            .map(|chunk| {
                let mut h = [0u8; 32];
                h.copy_from_slice(chunk);
                h
            })
            .collect();
        Ok(Self { size, hashes })
    }
}
