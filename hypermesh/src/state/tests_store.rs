//! Tests of reads, proofs, staging, writing and pruning.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, TableDefinition};

use super::tables::{NODES, PREIMAGES, VALUES};
use super::test_util::{commit, rows, store};
use super::*;
use crate::error::Error;

fn get(s: &StateStore, key: &str, version: u64) -> Option<String> {
    s.get(key.as_bytes(), version)
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

/// Checks `get_with_proof` against `get` and the root of `version`.
fn assert_proves(s: &StateStore, key: &str, version: u64) {
    let (value, proof) = s.get_with_proof(key.as_bytes(), version).unwrap();
    assert_eq!(value, s.get(key.as_bytes(), version).unwrap(), "{key}@{version}");
    let root = s.root(version).unwrap();
    proof.verify(root, key.as_bytes(), value.as_deref()).unwrap();
    // Through the wire and back, it still verifies.
    let again = StateProof::decode(&proof.encode()).unwrap();
    assert_eq!(again, proof);
    again.verify(root, key.as_bytes(), value.as_deref()).unwrap();
}

fn is_bad_proof(r: crate::error::Result<()>) -> bool {
    matches!(r, Err(Error::BadProof(_)))
}

#[test]
fn empty_root_is_jmts_placeholder() {
    type View<'a> = tables::TreeView<
        'a,
        redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    >;
    assert_eq!(EMPTY_ROOT, Tree::<'_, View<'_>>::EMPTY_ROOT.0);

    let s = store();
    assert_eq!(s.latest_version().unwrap(), None);
    assert_eq!(commit(&s, 0, &[]), EMPTY_ROOT);
    let (value, proof) = s.get_with_proof(b"anything", 0).unwrap();
    assert_eq!(value, None);
    proof.verify(EMPTY_ROOT, b"anything", None).unwrap();
    assert!(is_bad_proof(proof.verify(EMPTY_ROOT, b"anything", Some(b"x"))));
}

#[test]
fn historical_reads_and_proofs() {
    let s = store();
    let r0 = commit(&s, 0, &[("a", Some("1")), ("b", Some("2"))]);
    let r1 = commit(&s, 1, &[("a", Some("10")), ("c", Some("3"))]);
    let r2 = commit(&s, 2, &[("b", None), ("never", None)]);
    let r3 = commit(&s, 3, &[]);
    assert_eq!(s.latest_version().unwrap(), Some(3));
    assert_eq!(s.oldest_version().unwrap(), Some(0));
    assert!(r0 != r1 && r1 != r2 && r0 != r2);
    assert_eq!(r3, r2, "a version that changes nothing keeps the root");

    let expect = [
        (0, [Some("1"), Some("2"), None]),
        (1, [Some("10"), Some("2"), Some("3")]),
        (2, [Some("10"), None, Some("3")]),
        (3, [Some("10"), None, Some("3")]),
    ];
    for (version, values) in expect {
        for (key, want) in ["a", "b", "c"].iter().zip(values) {
            assert_eq!(get(&s, key, version).as_deref(), want, "{key}@{version}");
            assert_proves(&s, key, version);
        }
        assert_proves(&s, "absent", version);
    }

    let (value, proof) = s.get_with_proof(b"a", 1).unwrap();
    assert_eq!(value.as_deref(), Some(&b"10"[..]));
    assert!(is_bad_proof(proof.verify(r1, b"a", Some(b"11"))), "tampered value");
    assert!(is_bad_proof(proof.verify(r1, b"b", Some(b"10"))), "wrong key");
    assert!(is_bad_proof(proof.verify(r0, b"a", Some(b"10"))), "other root");
    assert!(is_bad_proof(proof.verify(r1, b"a", None)), "claimed absent");

    // Exclusion: b deleted at 2; its proof does not show the old value.
    let (value, proof) = s.get_with_proof(b"b", 2).unwrap();
    assert_eq!(value, None);
    proof.verify(r2, b"b", None).unwrap();
    assert!(is_bad_proof(proof.verify(r2, b"b", Some(b"2"))));
    assert!(is_bad_proof(proof.verify(r1, b"b", None)), "b exists at 1");
}

#[test]
fn every_changed_byte_of_a_proof_is_refused() {
    let s = store();
    let writes: Vec<(String, Option<&str>)> = (0..40).map(|i| (format!("key{i}"), Some("v"))).collect();
    let pairs: Vec<(&str, Option<&str>)> = writes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let root = commit(&s, 0, &pairs);
    for (key, value) in [("key7", Some(&b"v"[..])), ("missing", None)] {
        let (_, proof) = s.get_with_proof(key.as_bytes(), 0).unwrap();
        let bytes = proof.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            if let Ok(p) = StateProof::decode(&bad) {
                assert!(p.verify(root, key.as_bytes(), value).is_err(), "byte {i}");
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(StateProof::decode(&longer), Err(Error::Decode { .. })));
        assert!(StateProof::decode(&bytes[..bytes.len() - 1]).is_err());
    }
    // 257 siblings: refused before reading them.
    let mut many = vec![0u8];
    many.extend_from_slice(&257u16.to_be_bytes());
    many.extend(std::iter::repeat_n(0u8, 257));
    assert!(matches!(StateProof::decode(&many), Err(Error::Decode { .. })));
}

#[test]
fn staged_state_commits_with_the_callers_transaction_or_not_at_all() {
    const BLOCKS: TableDefinition<'_, u64, &str> = TableDefinition::new("blocks");
    let s = store();
    let r0 = commit(&s, 0, &[("a", Some("1"))]);
    let staged = s.stage(1, [(b"a".to_vec(), Some(b"2".to_vec()))]).unwrap();
    assert_eq!(s.latest_version().unwrap(), Some(0), "staging writes nothing");
    let nodes_before = rows(&s, NODES);
    {
        let txn = s.database().begin_write().unwrap();
        s.write(&txn, &staged).unwrap();
        txn.open_table(BLOCKS).unwrap().insert(1, "block 1").unwrap();
        // Dropped without commit.
    }
    assert_eq!(s.latest_version().unwrap(), Some(0));
    assert_eq!(rows(&s, NODES), nodes_before);
    assert!(matches!(
        s.get(b"a", 1),
        Err(Error::VersionUnavailable { version: 1, .. })
    ));
    assert_eq!(get(&s, "a", 0).as_deref(), Some("1"));
    assert_eq!(s.root(0).unwrap(), r0);

    let txn = s.database().begin_write().unwrap();
    s.write(&txn, &staged).unwrap();
    txn.open_table(BLOCKS).unwrap().insert(1, "block 1").unwrap();
    txn.commit().unwrap();
    assert_eq!(s.latest_version().unwrap(), Some(1));
    assert_eq!(s.root(1).unwrap(), staged.root());
    assert_eq!(get(&s, "a", 1).as_deref(), Some("2"));
    let read = s.database().begin_read().unwrap();
    assert!(read.open_table(BLOCKS).unwrap().get(1).unwrap().is_some());
}

#[test]
fn versions_must_follow_the_latest() {
    let s = store();
    commit(&s, 0, &[("a", Some("1"))]);
    for bad in [0, 2, 5, u64::MAX] {
        let r = s.stage(bad, [(b"a".to_vec(), None)]);
        assert!(matches!(r, Err(Error::VersionUnavailable { .. })), "{bad}");
    }
    // Two stagings of version 1: the second is based on a stale parent.
    let first = s.stage(1, [(b"a".to_vec(), Some(b"x".to_vec()))]).unwrap();
    let second = s.stage(1, [(b"a".to_vec(), Some(b"y".to_vec()))]).unwrap();
    s.commit(&first).unwrap();
    assert!(matches!(s.commit(&second), Err(Error::VersionUnavailable { .. })));
    assert_eq!(get(&s, "a", 1).as_deref(), Some("x"));

    // An empty state may start at any height.
    let t = store();
    commit(&t, 7, &[("a", Some("1"))]);
    assert_eq!(t.root(7).unwrap(), s.root(0).unwrap(), "same content, same root");
    commit(&t, 8, &[("b", Some("2"))]);
    assert_eq!(get(&t, "a", 8).as_deref(), Some("1"));
    assert_proves(&t, "b", 8);
    assert!(matches!(t.get(b"a", 6), Err(Error::VersionUnavailable { .. })));
}

#[test]
fn limits_and_duplicate_keys() {
    let s = store();
    let long_key = vec![0u8; MAX_KEY_LEN + 1];
    assert!(matches!(s.stage(0, [(long_key, None)]), Err(Error::Encode { .. })));
    let big = vec![0u8; MAX_VALUE_LEN + 1];
    assert!(matches!(
        s.stage(0, [(b"k".to_vec(), Some(big))]),
        Err(Error::Encode { .. })
    ));
    let w = |v: &str| (b"k".to_vec(), Some(v.as_bytes().to_vec()));
    let staged = s.stage(0, [w("first"), w("last")]).unwrap();
    s.commit(&staged).unwrap();
    assert_eq!(get(&s, "k", 0).as_deref(), Some("last"));
    // An empty key and an empty value are ordinary.
    let staged = s.stage(1, [(Vec::new(), Some(Vec::new()))]).unwrap();
    s.commit(&staged).unwrap();
    assert_eq!(s.get(b"", 1).unwrap(), Some(Vec::new()));
    assert_eq!(s.get(b"", 0).unwrap(), None);
}

#[test]
fn pruning_keeps_the_window_and_frees_the_rest() {
    let s = store();
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut history = Vec::new();
    for version in 0..30u64 {
        let mut writes = Vec::new();
        // Version 15 changes nothing (jmt then copies the root).
        let keys = if version == 15 { 0 } else { 50 };
        for k in 0..keys {
            let key = format!("k{k}");
            // Every key changes every version; k7 is deleted at 5 and
            // comes back at 20; k8 is deleted for good at 12.
            let value = match (k, version) {
                (7, 5..=19) | (8, 12..) => None,
                _ => Some(format!("{k}:{version}")),
            };
            match &value {
                Some(v) => model.insert(key.clone(), v.clone()),
                None => model.remove(&key),
            };
            writes.push((key.into_bytes(), value.map(String::into_bytes)));
        }
        s.commit(&s.stage(version, writes).unwrap()).unwrap();
        history.push(model.clone());
        if version >= 10 {
            // A window of the last 5 versions.
            s.prune_committed(version - 4).unwrap();
        }
    }
    assert_eq!(s.oldest_version().unwrap(), Some(25));
    for version in [0, 10, 24] {
        for r in [
            s.get(b"k1", version).map(|_| ()),
            s.get_with_proof(b"k1", version).map(|_| ()),
            s.root(version).map(|_| ()),
        ] {
            match r {
                Err(Error::VersionUnavailable { version: v, reason }) => {
                    assert_eq!(v, version);
                    assert!(reason.contains("pruned"), "{reason}");
                }
                other => panic!("version {version}: {other:?}"),
            }
        }
    }
    for version in 25..30u64 {
        let model = &history[version as usize];
        for k in 0..50 {
            let key = format!("k{k}");
            assert_eq!(get(&s, &key, version).as_ref(), model.get(&key));
            assert_proves(&s, &key, version);
        }
    }

    // Keeping only the latest leaves exactly the live tree: as many nodes
    // as a fresh store holding the same state, one value row and one
    // preimage per live key.
    let stats = s.prune_committed(29).unwrap();
    assert_eq!(stats.versions, 4);
    let fresh = store();
    let live: Vec<_> = history[29]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec())))
        .collect();
    fresh.commit(&fresh.stage(0, live).unwrap()).unwrap();
    assert_eq!(s.root(29).unwrap(), fresh.root(0).unwrap());
    assert_eq!(rows(&s, NODES), rows(&fresh, NODES));
    assert_eq!(rows(&s, VALUES), 49);
    assert_eq!(rows(&s, PREIMAGES), 49);
    assert_eq!(get(&s, "k8", 29), None);
    assert_proves(&s, "k8", 29);

    assert!(matches!(s.prune_committed(30), Err(Error::VersionUnavailable { .. })));
    // The pruned store goes on like the fresh one.
    let next = |st: &StateStore, v| commit(st, v, &[("k1", None), ("k7", Some("again"))]);
    assert_eq!(next(&s, 30), next(&fresh, 1));
    assert_proves(&s, "k7", 30);
}

#[test]
fn ten_thousand_updates_in_one_version() {
    let s = store();
    let writes = |version: u64| {
        (0..10_000u32).map(move |i| {
            let value = format!("{i}:{version}").into_bytes();
            (i.to_be_bytes().to_vec(), Some(value))
        })
    };
    let started = std::time::Instant::now();
    let staged = s.stage(0, writes(0)).unwrap();
    s.commit(&staged).unwrap();
    let first = started.elapsed();
    let started = std::time::Instant::now();
    let staged = s.stage(1, writes(1)).unwrap();
    s.commit(&staged).unwrap();
    // Informational only (run with --nocapture); never asserted.
    println!(
        "10,000 inserts: {first:?}; 10,000 updates: {:?} ({} new nodes)",
        started.elapsed(),
        staged.new_nodes()
    );
    assert_eq!(s.get(&42u32.to_be_bytes(), 1).unwrap(), Some(b"42:1".to_vec()));
    assert_proves(&s, "absent", 1);
}

#[test]
fn batch_inserts_and_the_general_path_build_the_same_tree() {
    // Without deletions `stage` takes jmt's batch insert; a deletion of a
    // key that was never written changes nothing in the tree but sends
    // the same writes down the general path. Roots, values and proofs
    // must agree version after version.
    let (batch, general) = (store(), store());
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for version in 0..6u64 {
        let writes: Vec<(String, Option<String>)> = (0..300)
            .map(|_| {
                let k = next() % 1_000;
                (format!("key/{k}"), Some(format!("v{version}/{}", next() % 97)))
            })
            .collect();
        let as_refs: Vec<(&str, Option<&str>)> = writes.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let mut with_delete = as_refs.clone();
        with_delete.push(("never/written", None));
        let a = commit(&batch, version, &as_refs);
        let b = commit(&general, version, &with_delete);
        assert_eq!(a, b, "version {version}");
        for (k, _) in as_refs.iter().take(20) {
            assert_eq!(get(&batch, k, version), get(&general, k, version));
            assert_proves(&batch, k, version);
        }
    }
}
