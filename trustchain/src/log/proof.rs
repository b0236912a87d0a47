//! RFC 9162 proof verification, for clients and witnesses that hold only
//! tree heads.
//!
//! Both verifiers check the proof's length against the length the tree
//! sizes require before hashing, so a wrong-length proof is reported as such
//! instead of as a root mismatch, and a hostile proof costs no more than
//! [`MAX_PROOF_LEN`] hashes.

use stoq::crypto::merkle_node_hash;

use super::tree::split_point;
use super::{empty_root, Hash, ProofError, MAX_PROOF_LEN};

/// Verifies that `leaf` (a leaf hash) is the leaf at `index` of the tree head
/// of `size` leaves whose root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if root_from_inclusion(leaf, index, size, proof)? != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The root that an inclusion proof for `leaf` at `index` in a tree of `size`
/// leaves implies; equal to the head's root exactly when the proof is valid.
/// Useful when the root is looked up by value afterwards (for example among
/// the heads a witness has co-signed).
pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash, ProofError> {
    check_not_too_long(proof)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // `node` is the leaf's position at the current level, `last` the position
    // of the tree's last node at that level: where they meet on an even
    // position, the node has no right sibling and is carried up unchanged.
    let (mut node, mut last) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if last == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if node & 1 == 1 || node == last {
            r = merkle_node_hash(p, &r);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            r = merkle_node_hash(&r, p);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Verifies that the tree head (`old_size`, `old_root`) is a prefix of the
/// tree head (`new_size`, `new_root`) (RFC 9162 section 2.1.4.2).
///
/// The RFC's algorithm covers `0 < old_size < new_size`. Its definitions
/// settle the other cases, which take an empty proof: every tree extends the
/// empty tree, whose root must then be `SHA3-256()`; and two heads of the same
/// size are consistent only if their roots are equal, otherwise the log has
/// forked.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    check_not_too_long(proof)?;
    if old_size > new_size {
        return Err(ProofError::OldSizeAfterNew { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        let empty = empty_root();
        if old_size == 0 && *old_root != empty {
            return Err(ProofError::NotEmptyRoot);
        }
        if new_size == 0 && *new_root != empty {
            return Err(ProofError::NotEmptyRoot);
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::Forked { size: new_size });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // When the old tree is a perfect subtree its root is a node of the new
    // tree, which the proof leaves out because the verifier already has it.
    let (seed, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(ProofError::WrongProofLength { expected, got: 0 }),
        }
    };
    let (mut node, mut last) = (old_size - 1, new_size - 1);
    // Skip the levels where the old tree's last node is a right child: the
    // seed is already the root of the subtree it closes.
    while node & 1 == 1 {
        node >>= 1;
        last >>= 1;
    }
    let (mut old_r, mut new_r) = (seed, seed);
    for c in rest {
        if last == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if node & 1 == 1 || node == last {
            old_r = merkle_node_hash(c, &old_r);
            new_r = merkle_node_hash(c, &new_r);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            new_r = merkle_node_hash(&new_r, c);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if old_r != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_r != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

fn check_not_too_long(proof: &[Hash]) -> Result<(), ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::ProofTooLong {
            len: proof.len(),
            max: MAX_PROOF_LEN,
        });
    }
    Ok(())
}

/// The length of `PATH(index, D[0:size])` for `index < size`: one hash per
/// level of the RFC's recursion.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut m, mut n, mut len) = (index, size, 0);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
        len += 1;
    }
    len
}

/// The length of `PROOF(old_size, D[0:new_size])` for
/// `0 < old_size < new_size`, following `SUBPROOF`'s recursion.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let (mut m, mut n, mut whole, mut len) = (old_size, new_size, true, 0);
    while m != n {
        let k = split_point(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = false;
        }
        len += 1;
    }
    if whole {
        len
    } else {
        len + 1
    }
}
