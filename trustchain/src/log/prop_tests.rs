//! Property tests: random trees and sizes against the reference
//! implementation, and every tampering of a valid proof refused.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::Index;

use super::tests::{reference, tree_of};
use super::*;

fn flipped(proof: &[Hash], at: usize, byte: usize) -> Vec<Hash> {
    let mut bad = proof.to_vec();
    bad[at][byte] ^= 0x01;
    bad
}

fn tampered(root: &Hash) -> Hash {
    let mut bad = *root;
    bad[31] ^= 0x80;
    bad
}

proptest! {
    // Failing seeds are not written next to the sources: a failure worth
    // keeping becomes a named unit test in `tests.rs`.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs(total in 1usize..300, s in any::<Index>(), i in any::<Index>()) {
        let (tree, leaves) = tree_of(total);
        let size = 1 + s.index(total);
        let index = i.index(size);
        let (n, m) = (size as u64, index as u64);
        let root = tree.root_at(n).unwrap();
        let proof = tree.inclusion_proof(m, n).unwrap();
        prop_assert_eq!(&proof, &reference::path(index, &leaves[..size]));
        prop_assert_eq!(root, reference::mth(&leaves[..size]));
        verify_inclusion(&leaves[index], m, n, &proof, &root).unwrap();
        prop_assert_eq!(root_from_inclusion(&leaves[index], m, n, &proof).unwrap(), root);

        for at in 0..proof.len() {
            for byte in 0..32 {
                let bad = flipped(&proof, at, byte);
                prop_assert!(verify_inclusion(&leaves[index], m, n, &bad, &root).is_err());
            }
        }
        // Only the index is checked here, not the size: a proof does not pin
        // the tree size on its own (the proof for leaf 0 of 3 leaves also
        // "verifies" as leaf 0 of 4 against the same root). The size comes
        // from the signed tree head, together with the root.
        for other in 0..size as u64 {
            if other != m {
                prop_assert!(verify_inclusion(&leaves[index], other, n, &proof, &root).is_err());
            }
        }
        prop_assert_eq!(verify_inclusion(&leaves[index], m, n, &proof, &tampered(&root)), Err(ProofError::RootMismatch));
        prop_assert!(verify_inclusion(&tampered(&leaves[index]), m, n, &proof, &root).is_err());
        if size < total {
            let later = tree.root();
            prop_assert!(verify_inclusion(&leaves[index], m, n, &proof, &later).is_err());
        }
    }

    #[test]
    fn consistency_proofs(total in 1usize..300, s in any::<Index>(), o in any::<Index>()) {
        let (tree, leaves) = tree_of(total);
        let new = 1 + s.index(total);
        let old = o.index(new + 1);
        let (n, m) = (new as u64, old as u64);
        let (old_root, new_root) = (tree.root_at(m).unwrap(), tree.root_at(n).unwrap());
        let proof = tree.consistency_proof(m, n).unwrap();
        if old > 0 && old < new {
            prop_assert_eq!(&proof, &reference::proof(old, &leaves[..new]));
        } else {
            prop_assert!(proof.is_empty());
        }
        verify_consistency(m, n, &old_root, &new_root, &proof).unwrap();

        for at in 0..proof.len() {
            for byte in 0..32 {
                let bad = flipped(&proof, at, byte);
                prop_assert!(verify_consistency(m, n, &old_root, &new_root, &bad).is_err());
            }
        }
        prop_assert!(verify_consistency(m, n, &tampered(&old_root), &new_root, &proof).is_err());
        if old > 0 {
            // (The empty tree is a prefix of every tree, whatever its root.)
            prop_assert!(verify_consistency(m, n, &old_root, &tampered(&new_root), &proof).is_err());
        }
        if old < new {
            for other in 0..=n {
                if other != m {
                    prop_assert!(verify_consistency(other, n, &old_root, &new_root, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn range_proofs(total in 1usize..300, a in any::<Index>(), b in any::<Index>(), i in any::<Index>()) {
        let (tree, leaves) = tree_of(total);
        let start = a.index(total + 1);
        let end = start + b.index(total - start + 1);
        let range = &leaves[start..end];
        let root = tree.range_root(start as u64, end as u64).unwrap();
        prop_assert_eq!(root, reference::mth(range));
        if end > start {
            let len = end - start;
            // The reference PATH is O(n), so check a sample of leaves.
            for offset in [0, i.index(len), len - 1] {
                let index = start + offset;
                let proof = tree.range_inclusion_proof(index as u64, start as u64, end as u64).unwrap();
                prop_assert_eq!(&proof, &reference::path(offset, range));
                verify_inclusion(&leaves[index], offset as u64, len as u64, &proof, &root).unwrap();
            }
        }
    }

    #[test]
    fn rebuild_and_frontier(total in 0usize..300, s in any::<Index>()) {
        let (tree, leaves) = tree_of(total);
        let rebuilt = MerkleTree::from_leaf_hashes(leaves.clone());
        prop_assert_eq!(rebuilt.root(), tree.root());
        let size = s.index(total + 1);
        let frontier = Frontier::from_tree(&tree, size as u64).unwrap();
        prop_assert_eq!(frontier.root(), reference::mth(&leaves[..size]));
        prop_assert_eq!(Frontier::from_bytes(&frontier.to_bytes()).unwrap(), frontier.clone());
        // A witness that extends its frontier leaf by leaf reaches the log's head.
        let mut extended = frontier;
        for leaf in &leaves[size..] {
            extended.push(*leaf);
        }
        prop_assert_eq!(extended.root(), tree.root());
        prop_assert_eq!(extended, Frontier::from_tree(&tree, total as u64).unwrap());
    }

    #[test]
    fn frontier_decoding_is_canonical(
        size in prop_oneof![0u64..1000, any::<u64>()],
        count in prop_oneof![Just(None), any::<u8>().prop_map(Some)],
        extra in -40i64..40,
    ) {
        // Mostly well-formed headers with a body of about the right length, so
        // that both acceptance and every refusal are exercised.
        let count = count.unwrap_or(size.count_ones() as u8);
        let body_len = (32 * i64::from(count) + extra).max(0) as usize;
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.push(count);
        bytes.extend((0..body_len).map(|i| i as u8));
        match Frontier::from_bytes(&bytes) {
            Ok(frontier) => {
                prop_assert_eq!(frontier.to_bytes(), bytes);
                prop_assert_eq!(frontier.size(), size);
            }
            Err(e) => {
                let expected_kind = matches!(
                    e,
                    ProofError::FrontierSizeTooLarge { .. }
                        | ProofError::FrontierCount { .. }
                        | ProofError::FrontierLength { .. }
                );
                prop_assert!(expected_kind, "unexpected refusal {:?}", e);
            }
        }
    }
}
