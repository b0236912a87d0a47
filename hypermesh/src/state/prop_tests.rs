//! Property tests: the root is a function of the state alone, and proof
//! decoding never panics on hostile bytes.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::test_util::store;
use super::*;

/// Per version, writes to keys from a small alphabet (so versions overwrite
/// and delete each other's keys); `None` deletes.
fn arb_history() -> impl Strategy<Value = Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>> {
    let key = proptest::collection::vec(0u8..4, 0..3);
    let value = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8));
    proptest::collection::vec(proptest::collection::btree_map(key, value, 0..12), 1..6)
}

fn apply(s: &StateStore, version: u64, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Hash {
    let staged = s.stage(version, writes).unwrap();
    s.commit(&staged).unwrap();
    staged.root()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn roots_depend_only_on_the_writes(history in arb_history(), seed in any::<u64>()) {
        let (a, b, c) = (store(), store(), store());
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (version, writes) in history.iter().enumerate() {
            let version = version as u64;
            let in_order: Vec<_> = writes.clone().into_iter().collect();
            // Same writes, another order: reversed, then rotated by the seed.
            let mut shuffled = in_order.clone();
            shuffled.reverse();
            if !shuffled.is_empty() {
                let n = (seed as usize) % shuffled.len();
                shuffled.rotate_left(n);
            }
            let ra = apply(&a, version, in_order.clone());
            let rb = apply(&b, version, in_order);
            let rc = apply(&c, version, shuffled);
            prop_assert_eq!(ra, rb);
            prop_assert_eq!(ra, rc);
            for (k, v) in writes {
                match v {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(k),
                };
            }
            // The same state written in one go gives the same root.
            let fresh = store();
            let once = model.iter().map(|(k, v)| (k.clone(), Some(v.clone())));
            prop_assert_eq!(apply(&fresh, 0, once.collect()), ra);
        }
        let last = history.len() as u64 - 1;
        let root = a.root(last).unwrap();
        for key in [vec![], vec![0], vec![1, 2], vec![3, 3], vec![9]] {
            let (value, proof) = a.get_with_proof(&key, last).unwrap();
            prop_assert_eq!(value.as_ref(), model.get(&key));
            prop_assert!(proof.verify(root, &key, value.as_deref()).is_ok());
        }
    }

    #[test]
    fn proof_decoding_is_strict_and_total(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(proof) = StateProof::decode(&bytes) {
            // Canonical: one encoding per proof.
            prop_assert_eq!(proof.encode(), bytes);
            // Verifying garbage fails cleanly, never panics.
            let _ = proof.verify([0; 32], b"k", Some(b"v"));
            let _ = proof.verify(EMPTY_ROOT, b"k", None);
        }
    }

    #[test]
    fn structured_garbage_proofs_do_not_panic(
        leaf in proptest::option::of((any::<[u8; 32]>(), any::<[u8; 32]>())),
        tags in proptest::collection::vec(0u8..3, 0..=256),
        fill in any::<u8>(),
    ) {
        let mut bytes = Vec::new();
        match leaf {
            None => bytes.push(0),
            Some((k, v)) => { bytes.push(1); bytes.extend_from_slice(&k); bytes.extend_from_slice(&v); }
        }
        bytes.extend_from_slice(&(tags.len() as u16).to_be_bytes());
        for t in &tags {
            bytes.push(*t);
            if *t != 0 { bytes.extend(std::iter::repeat_n(fill, 64)); }
        }
        let proof = StateProof::decode(&bytes).unwrap();
        prop_assert!(proof.verify([fill; 32], b"key", Some(b"v")).is_err());
        let _ = proof.verify(EMPTY_ROOT, b"key", None);
    }
}
