//! Tests of snapshot export and import.

use sha3::{Digest, Sha3_256};

use super::tables::{NODES, PREIMAGES, VALUES};
use super::test_util::{commit, mem_db, rows, store};
use super::*;
use crate::error::Error;

/// A store with some history: 200 keys, updates and deletions over 4
/// versions.
fn sample() -> StateStore {
    let s = store();
    for version in 0..4u64 {
        let writes = (0..200u32).map(|i| {
            let key = format!("key-{i}").into_bytes();
            let value = (i % 7 != version as u32).then(|| format!("{i}/{version}").into_bytes());
            (key, value)
        });
        s.commit(&s.stage(version, writes).unwrap()).unwrap();
    }
    s
}

fn export(s: &StateStore, version: u64) -> (Vec<u8>, SnapshotInfo) {
    let mut out = Vec::new();
    let info = s.export_snapshot(version, &mut out).unwrap();
    assert_eq!(info.bytes, out.len() as u64);
    (out, info)
}

/// Asserts that `db` holds no state at all.
fn assert_untouched(db: std::sync::Arc<redb::Database>) {
    let s = StateStore::open(db).unwrap();
    assert_eq!(s.latest_version().unwrap(), None);
    assert_eq!(rows(&s, NODES) + rows(&s, VALUES) + rows(&s, PREIMAGES), 0);
}

#[test]
fn export_import_reproduces_the_state() {
    let s = sample();
    for version in [1, 3] {
        let (bytes, info) = export(&s, version);
        assert_eq!(info.root, s.root(version).unwrap());
        let (t, got) = StateStore::import_snapshot(mem_db(), &mut bytes.as_slice(), info.root).unwrap();
        assert_eq!(got, info);
        assert_eq!(t.latest_version().unwrap(), Some(version));
        assert_eq!(t.root(version).unwrap(), info.root);
        for i in 0..200u32 {
            let key = format!("key-{i}");
            let want = s.get(key.as_bytes(), version).unwrap();
            assert_eq!(t.get(key.as_bytes(), version).unwrap(), want);
            let (value, proof) = t.get_with_proof(key.as_bytes(), version).unwrap();
            assert_eq!(value, want);
            proof.verify(info.root, key.as_bytes(), want.as_deref()).unwrap();
        }
        // One state, one snapshot.
        assert_eq!(export(&t, version).0, bytes);
        // The imported state goes on like the original.
        let next = |st: &StateStore| {
            let w = [(b"key-3".to_vec(), None), (b"new".to_vec(), Some(b"n".to_vec()))];
            let staged = st.stage(version + 1, w).unwrap();
            st.commit(&staged).unwrap();
            staged.root()
        };
        if version == 3 {
            assert_eq!(next(&t), next(&s));
        }
    }
}

#[test]
fn small_states_round_trip() {
    for (version, writes) in [(0u64, vec![]), (5, vec![("only", Some("one"))])] {
        let s = store();
        let root = commit(&s, version, &writes);
        let (bytes, info) = export(&s, version);
        assert_eq!(info.entries, writes.len() as u64);
        let (t, _) = StateStore::import_snapshot(mem_db(), &mut bytes.as_slice(), root).unwrap();
        assert_eq!(t.root(version).unwrap(), root);
        commit(&t, version + 1, &[("x", Some("y"))]);
    }
}

#[test]
fn import_in_many_chunks() {
    // More entries than one import chunk holds.
    let s = store();
    let writes = (0..40_000u32).map(|i| (i.to_le_bytes().to_vec(), Some(vec![7u8; 16])));
    s.commit(&s.stage(9, writes).unwrap()).unwrap();
    let (bytes, info) = export(&s, 9);
    let (t, _) = StateStore::import_snapshot(mem_db(), &mut bytes.as_slice(), info.root).unwrap();
    assert_eq!(t.root(9).unwrap(), info.root);
    assert_eq!(rows(&t, NODES), rows(&s, NODES), "no leftover nodes of earlier chunks");
    let (value, proof) = t.get_with_proof(&123u32.to_le_bytes(), 9).unwrap();
    proof
        .verify(info.root, &123u32.to_le_bytes(), value.as_deref())
        .unwrap();
}

#[test]
fn damaged_snapshots_are_refused_and_write_nothing() {
    let s = sample();
    let (bytes, info) = export(&s, 2);

    // Wrong expected root.
    let db = mem_db();
    let r = StateStore::import_snapshot(db.clone(), &mut bytes.as_slice(), [9; 32]);
    assert!(matches!(r, Err(Error::BadProof(_))));
    assert_untouched(db);

    // Any single changed byte.
    for i in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        let db = mem_db();
        let r = StateStore::import_snapshot(db.clone(), &mut bad.as_slice(), info.root);
        assert!(r.is_err(), "byte {i}");
        assert_untouched(db);
    }

    // Truncated anywhere.
    for len in [0, 7, 8, 48, 49, bytes.len() / 2, bytes.len() - 33, bytes.len() - 1] {
        let db = mem_db();
        let r = StateStore::import_snapshot(db.clone(), &mut &bytes[..len], info.root);
        assert!(matches!(r, Err(Error::Decode { .. })), "length {len}: {r:?}");
        assert_untouched(db);
    }

    // Into a state that is not empty.
    let t = store();
    commit(&t, 0, &[("a", Some("b"))]);
    let r = StateStore::import_snapshot(t.database().clone(), &mut bytes.as_slice(), info.root);
    assert!(matches!(r, Err(Error::Store(_))));
}

/// A snapshot made by hand (valid framing and checksum) from entries in
/// the order given.
fn handmade(version: u64, root: Hash, entries: &[(&[u8], &[u8])], value_len: Option<u32>) -> Vec<u8> {
    let mut b = b"HMSTATE1".to_vec();
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&root);
    for (k, v) in entries {
        b.push(1);
        b.extend_from_slice(&(k.len() as u16).to_be_bytes());
        b.extend_from_slice(k);
        let len = value_len.unwrap_or(v.len() as u32);
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(v);
    }
    b.push(0);
    b.extend_from_slice(&(entries.len() as u64).to_be_bytes());
    let digest: Hash = Sha3_256::digest(&b).into();
    b.extend_from_slice(&digest);
    b
}

#[test]
fn hostile_snapshots_are_refused() {
    let s = store();
    let root = commit(&s, 0, &[("a", Some("1")), ("b", Some("2"))]);
    let good = handmade(0, root, &[], None);
    let mut ordered: Vec<(&[u8], &[u8])> = vec![(b"a", b"1"), (b"b", b"2")];
    ordered.sort_by_key(|(k, _)| key_hash(k));
    let ok = handmade(0, root, &ordered, None);
    assert!(StateStore::import_snapshot(mem_db(), &mut ok.as_slice(), root).is_ok());

    // An honest frame around the wrong content: the root check refuses it.
    let db = mem_db();
    let r = StateStore::import_snapshot(db.clone(), &mut good.as_slice(), root);
    assert!(matches!(r, Err(Error::BadProof(_))));
    assert_untouched(db);

    let reversed: Vec<_> = ordered.iter().rev().copied().collect();
    let repeated = vec![ordered[0], ordered[0]];
    for entries in [reversed, repeated] {
        let db = mem_db();
        let bytes = handmade(0, root, &entries, None);
        let r = StateStore::import_snapshot(db.clone(), &mut bytes.as_slice(), root);
        assert!(matches!(r, Err(Error::Decode { .. })), "{r:?}");
        assert_untouched(db);
    }

    // A length of 4 GiB is refused before anything is allocated for it.
    let huge = handmade(0, root, &[(b"a", b"")], Some(u32::MAX));
    let r = StateStore::import_snapshot(mem_db(), &mut huge.as_slice(), root);
    assert!(matches!(r, Err(Error::Decode { reason, .. }) if reason.contains("exceeds")));

    let mut magic = ok.clone();
    magic[0] = b'X';
    let r = StateStore::import_snapshot(mem_db(), &mut magic.as_slice(), root);
    assert!(matches!(r, Err(Error::Decode { .. })));
}
