//! Known answers, the RFC 9162 worked example, a naive reference
//! implementation of the RFC's definitions, and the error cases.
#![allow(clippy::unwrap_used)]

use stoq::crypto::{merkle_leaf_hash, merkle_node_hash, sha3_256};

use super::*;

/// RFC 9162 section 2.1 written as literally as possible over leaf hashes;
/// slow (O(n) per call) and obviously right, the yardstick for the tree.
pub(super) mod reference {
    use super::*;

    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// `MTH(D[n])`.
    pub(crate) fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => sha3_256(&[]),
            1 => leaves[0],
            n => {
                let k = split(n);
                merkle_node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// `PATH(m, D[n])`.
    pub(crate) fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        let (mut p, sibling) = if m < k {
            (path(m, &leaves[..k]), mth(&leaves[k..]))
        } else {
            (path(m - k, &leaves[k..]), mth(&leaves[..k]))
        };
        p.push(sibling);
        p
    }

    /// `PROOF(m, D[n])` for `0 < m < n`.
    pub(crate) fn proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        subproof(m, leaves, true)
    }

    fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole { Vec::new() } else { vec![mth(leaves)] };
        }
        let k = split(n);
        let (mut p, sibling) = if m <= k {
            (subproof(m, &leaves[..k], whole), mth(&leaves[k..]))
        } else {
            (subproof(m - k, &leaves[k..], false), mth(&leaves[..k]))
        };
        p.push(sibling);
        p
    }
}

pub(super) fn entry(i: usize) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

/// A tree of `n` generated entries and its leaf hashes.
pub(super) fn tree_of(n: usize) -> (MerkleTree, Vec<Hash>) {
    let leaves: Vec<Hash> = (0..n).map(|i| merkle_leaf_hash(&entry(i))).collect();
    let mut tree = MerkleTree::new();
    for i in 0..n {
        assert_eq!(tree.append(&entry(i)), i as u64);
    }
    (tree, leaves)
}

fn hex(s: &str) -> Hash {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn known_answer_roots() {
    // Computed once with Python's hashlib (an independent SHA3-256): a change
    // in the leaf/node prefixes or the empty-tree rule breaks these.
    let empty = hex("a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    let leaf_of_nothing = hex("5d53469f20fef4f8eab52b88044ede69c77a6a68a60728609fc4a65ff531e7d0");
    let one = hex("d4a31b6bbfc0f8229bcb66ba85fd3cf1fe50c5da2f4cc69edbdf1e313258aaba");
    let two = hex("3ec5c89b9b90f68dd0878fddc1d803e6f4ccdcd0eb458d352cc7f0f819c840c9");
    let three = hex("3eaea59d209d4f38ef1fec603f66e86df85d5d8af007985389422debfeaf2e30");

    let mut tree = MerkleTree::new();
    assert_eq!(tree.root(), empty);
    assert_eq!(empty_root(), empty);
    assert_eq!(reference::mth(&[]), empty);
    for (entry, want) in [(&b"a"[..], one), (b"b", two), (b"c", three)] {
        tree.append(entry);
        assert_eq!(tree.root(), want);
    }
    assert_eq!(tree.root_at(0).unwrap(), empty);
    assert_eq!(tree.root_at(1).unwrap(), one);
    assert_eq!(tree.root_at(2).unwrap(), two);
    let leaves: Vec<Hash> = [b"a", b"b", b"c"].iter().map(|e| merkle_leaf_hash(*e)).collect();
    assert_eq!(reference::mth(&leaves), three);

    let mut single = MerkleTree::new();
    single.append(b"");
    assert_eq!(single.root(), leaf_of_nothing);
    assert_eq!(single.leaf_hash(0), Some(leaf_of_nothing));
}

#[test]
fn rfc9162_worked_example() {
    // The seven-leaf tree of RFC 9162 section 2.1.5, its nodes named as there.
    let (tree, d) = tree_of(7);
    let node = merkle_node_hash;
    let (a, b, c, dd, e, f, j) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    let (g, h, i) = (node(&a, &b), node(&c, &dd), node(&e, &f));
    let (k, l) = (node(&g, &h), node(&i, &j));
    assert_eq!(tree.root(), node(&k, &l));
    assert_eq!(tree.inclusion_proof(0, 7).unwrap(), vec![b, h, l]);
    assert_eq!(tree.inclusion_proof(3, 7).unwrap(), vec![c, g, l]);
    assert_eq!(tree.inclusion_proof(4, 7).unwrap(), vec![f, j, k]);
    assert_eq!(tree.inclusion_proof(6, 7).unwrap(), vec![i, k]);
    assert_eq!(tree.consistency_proof(3, 7).unwrap(), vec![c, dd, g, l]);
    assert_eq!(tree.consistency_proof(4, 7).unwrap(), vec![l]);
    assert_eq!(tree.consistency_proof(6, 7).unwrap(), vec![i, j, k]);
}

#[test]
fn small_trees_match_reference() {
    for n in 0..=20 {
        let (tree, leaves) = tree_of(n);
        assert_eq!(tree.size(), n as u64);
        assert_eq!(tree.root(), reference::mth(&leaves), "root of {n}");
        for size in 0..=n {
            let prefix = &leaves[..size];
            let root = tree.root_at(size as u64).unwrap();
            assert_eq!(root, reference::mth(prefix), "root_at({size}) of {n}");
            for (index, leaf) in prefix.iter().enumerate() {
                let proof = tree.inclusion_proof(index as u64, size as u64).unwrap();
                assert_eq!(proof, reference::path(index, prefix), "PATH({index}, {size})");
                verify_inclusion(leaf, index as u64, size as u64, &proof, &root).unwrap();
            }
            for old in 0..=size {
                let proof = tree.consistency_proof(old as u64, size as u64).unwrap();
                if old == 0 || old == size {
                    assert!(proof.is_empty());
                } else {
                    assert_eq!(proof, reference::proof(old, prefix), "PROOF({old}, {size})");
                }
                let old_root = reference::mth(&leaves[..old]);
                verify_consistency(old as u64, size as u64, &old_root, &root, &proof).unwrap();
            }
        }
    }
}

#[test]
fn ranges_match_reference() {
    let (tree, leaves) = tree_of(37);
    for start in 0..=37 {
        for end in start..=37 {
            let range = &leaves[start..end];
            let root = tree.range_root(start as u64, end as u64).unwrap();
            assert_eq!(root, reference::mth(range), "range {start}..{end}");
            for (offset, leaf) in range.iter().enumerate() {
                let index = (start + offset) as u64;
                let proof = tree.range_inclusion_proof(index, start as u64, end as u64).unwrap();
                assert_eq!(proof, reference::path(offset, range));
                verify_inclusion(leaf, offset as u64, range.len() as u64, &proof, &root).unwrap();
            }
        }
    }
}

#[test]
fn rebuilt_tree_equals_appended_tree() {
    for n in 0..=70 {
        let (tree, leaves) = tree_of(n);
        let rebuilt = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        assert_eq!(rebuilt.size(), n as u64);
        for size in 0..=n as u64 {
            assert_eq!(rebuilt.root_at(size).unwrap(), tree.root_at(size).unwrap());
            assert_eq!(
                Frontier::from_tree(&rebuilt, size).unwrap(),
                Frontier::from_tree(&tree, size).unwrap()
            );
        }
        // A rebuilt tree keeps growing like any other.
        let mut grown = rebuilt.clone();
        assert_eq!(grown.append(b"more"), n as u64);
        let mut expected = leaves.clone();
        expected.push(merkle_leaf_hash(b"more"));
        assert_eq!(grown.root(), reference::mth(&expected));
        assert_eq!(MerkleTree::default().root(), empty_root());
    }
}

#[test]
fn leaf_hash_lookup() {
    let (tree, leaves) = tree_of(5);
    assert_eq!(tree.leaf_hash(4), Some(leaves[4]));
    assert_eq!(tree.leaf_hash(5), None);
    assert_eq!(tree.leaf_hash(u64::MAX), None);
    assert_eq!(format!("{tree:?}"), "MerkleTree { size: 5, .. }");
}

#[test]
fn error_messages_read_as_sentences() {
    let msg = ProofError::WrongProofLength { expected: 4, got: 5 }.to_string();
    assert_eq!(msg, "proof has 5 hashes but these tree sizes need exactly 4");
    let msg = ProofError::SizeOutOfRange {
        requested: 11,
        available: 10,
    }
    .to_string();
    assert_eq!(msg, "tree size 11 is larger than the log, which holds 10 leaves");
    assert!(ProofError::Forked { size: 3 }.to_string().contains("forked"));
}
