//! Refusals: bad arguments, tampered or mismatched proofs, the consistency
//! edge cases and forked heads.
#![allow(clippy::unwrap_used)]

use super::tests::tree_of;
use super::*;

#[test]
fn generation_refuses_bad_arguments() {
    let (tree, _) = tree_of(10);
    assert_eq!(
        tree.inclusion_proof(10, 10),
        Err(ProofError::IndexOutOfRange { index: 10, size: 10 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 0),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        tree.inclusion_proof(3, 11),
        Err(ProofError::SizeOutOfRange {
            requested: 11,
            available: 10
        })
    );
    assert_eq!(
        tree.root_at(11),
        Err(ProofError::SizeOutOfRange {
            requested: 11,
            available: 10
        })
    );
    assert_eq!(
        tree.consistency_proof(5, 4),
        Err(ProofError::OldSizeAfterNew {
            old_size: 5,
            new_size: 4
        })
    );
    assert_eq!(
        tree.consistency_proof(5, 11),
        Err(ProofError::SizeOutOfRange {
            requested: 11,
            available: 10
        })
    );
    assert_eq!(
        tree.range_root(6, 5),
        Err(ProofError::InvalidRange { start: 6, end: 5 })
    );
    assert_eq!(
        tree.range_root(5, 12),
        Err(ProofError::SizeOutOfRange {
            requested: 12,
            available: 10
        })
    );
    assert_eq!(
        tree.range_inclusion_proof(2, 3, 6),
        Err(ProofError::IndexOutsideRange {
            index: 2,
            start: 3,
            end: 6
        })
    );
    assert_eq!(
        tree.range_inclusion_proof(6, 3, 6),
        Err(ProofError::IndexOutsideRange {
            index: 6,
            start: 3,
            end: 6
        })
    );
    assert_eq!(tree.range_root(4, 4), Ok(empty_root()));
    assert_eq!(
        Frontier::from_tree(&tree, 11),
        Err(ProofError::SizeOutOfRange {
            requested: 11,
            available: 10
        })
    );
}

#[test]
fn verification_refuses_bad_arguments() {
    let (tree, leaves) = tree_of(10);
    let root = tree.root();
    let proof = tree.inclusion_proof(3, 10).unwrap();
    let huge = vec![[0u8; 32]; MAX_PROOF_LEN + 1];
    let too_long = ProofError::ProofTooLong {
        len: MAX_PROOF_LEN + 1,
        max: MAX_PROOF_LEN,
    };
    assert_eq!(verify_inclusion(&leaves[3], 3, 10, &huge, &root), Err(too_long.clone()));
    assert_eq!(root_from_inclusion(&leaves[3], 3, 10, &huge), Err(too_long.clone()));
    assert_eq!(verify_consistency(3, 10, &root, &root, &huge), Err(too_long));
    assert_eq!(
        verify_inclusion(&leaves[3], 10, 10, &proof, &root),
        Err(ProofError::IndexOutOfRange { index: 10, size: 10 })
    );
    assert_eq!(
        verify_inclusion(&leaves[3], 0, 0, &[], &root),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    let mut longer = proof.clone();
    longer.push(root);
    assert_eq!(
        verify_inclusion(&leaves[3], 3, 10, &longer, &root),
        Err(ProofError::WrongProofLength {
            expected: proof.len(),
            got: proof.len() + 1
        })
    );
    assert_eq!(
        verify_inclusion(&leaves[3], 3, 10, &proof[1..], &root),
        Err(ProofError::WrongProofLength {
            expected: proof.len(),
            got: proof.len() - 1
        })
    );
    assert_eq!(
        verify_inclusion(&leaves[4], 3, 10, &proof, &root),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(root_from_inclusion(&leaves[3], 3, 10, &proof), Ok(root));

    let old_root = tree.root_at(4).unwrap();
    let cproof = tree.consistency_proof(4, 10).unwrap();
    assert_eq!(
        verify_consistency(10, 4, &root, &old_root, &cproof),
        Err(ProofError::OldSizeAfterNew {
            old_size: 10,
            new_size: 4
        })
    );
    assert_eq!(
        verify_consistency(4, 10, &old_root, &root, &[]),
        Err(ProofError::WrongProofLength {
            expected: cproof.len(),
            got: 0
        })
    );
    assert_eq!(
        verify_consistency(4, 10, &old_root, &old_root, &cproof),
        Err(ProofError::NewRootMismatch)
    );
    let odd_root = tree.root_at(5).unwrap();
    let odd_proof = tree.consistency_proof(5, 10).unwrap();
    assert_eq!(
        verify_consistency(5, 10, &old_root, &root, &odd_proof),
        Err(ProofError::OldRootMismatch)
    );
    verify_consistency(5, 10, &odd_root, &root, &odd_proof).unwrap();
}

#[test]
fn consistency_edge_cases() {
    let (tree, _) = tree_of(6);
    let (root, empty) = (tree.root(), empty_root());
    // Every tree extends the empty one, whose root is fixed.
    verify_consistency(0, 6, &empty, &root, &[]).unwrap();
    verify_consistency(0, 0, &empty, &empty, &[]).unwrap();
    assert_eq!(
        verify_consistency(0, 6, &root, &root, &[]),
        Err(ProofError::NotEmptyRoot)
    );
    assert_eq!(
        verify_consistency(0, 0, &empty, &root, &[]),
        Err(ProofError::NotEmptyRoot)
    );
    assert_eq!(
        verify_consistency(0, 6, &empty, &root, &[root]),
        Err(ProofError::WrongProofLength { expected: 0, got: 1 })
    );
    // Same size: consistent exactly when the roots agree.
    verify_consistency(6, 6, &root, &root, &[]).unwrap();
    let other = tree.root_at(5).unwrap();
    assert_eq!(
        verify_consistency(6, 6, &other, &root, &[]),
        Err(ProofError::Forked { size: 6 })
    );
    assert_eq!(
        verify_consistency(6, 6, &root, &root, &[root]),
        Err(ProofError::WrongProofLength { expected: 0, got: 1 })
    );
    assert_eq!(tree.consistency_proof(0, 6), Ok(vec![]));
    assert_eq!(tree.consistency_proof(6, 6), Ok(vec![]));
    assert_eq!(tree.consistency_proof(0, 0), Ok(vec![]));
}

#[test]
fn forked_heads_are_inconsistent() {
    // Two logs agree on ten entries, then each shows a different history.
    let mut honest = tree_of(10).0;
    let mut fork = honest.clone();
    for i in 0..5 {
        honest.append(format!("honest-{i}").as_bytes());
    }
    for i in 0..7 {
        fork.append(format!("fork-{i}").as_bytes());
    }
    let (honest_root, fork_root) = (honest.root(), fork.root());
    // The shared prefix is consistent with both.
    let shared = honest.root_at(10).unwrap();
    verify_consistency(
        10,
        15,
        &shared,
        &honest_root,
        &honest.consistency_proof(10, 15).unwrap(),
    )
    .unwrap();
    verify_consistency(10, 17, &shared, &fork_root, &fork.consistency_proof(10, 17).unwrap()).unwrap();
    // Whatever the forked log sends, the honest head is not its prefix.
    let from_fork = fork.consistency_proof(15, 17).unwrap();
    assert!(verify_consistency(15, 17, &honest_root, &fork_root, &from_fork).is_err());
    let from_honest = honest.consistency_proof(12, 15).unwrap();
    assert!(verify_consistency(12, 15, &fork.root_at(12).unwrap(), &honest_root, &from_honest).is_err());
    // Extending the honest log to 17 does not help the fork either.
    let mut extended = honest.clone();
    extended.append(b"x");
    extended.append(b"y");
    let proof = extended.consistency_proof(15, 17).unwrap();
    assert_eq!(
        verify_consistency(15, 17, &honest_root, &fork_root, &proof),
        Err(ProofError::NewRootMismatch)
    );
    verify_consistency(15, 17, &honest_root, &extended.root(), &proof).unwrap();
    // Same size, different roots.
    assert_eq!(
        verify_consistency(15, 15, &honest_root, &fork.root_at(15).unwrap(), &[]),
        Err(ProofError::Forked { size: 15 })
    );
}
