//! The store keeps a certificate once, in place of its precertificate
//! entry: entries read back byte for byte, certificates by serial, and a
//! batch that does not line up is refused whole.

use std::time::Duration;

use stoq::crypto::{merkle_leaf_hash, Algorithm, KeyPair};
use stoq::pki::{sign_tbs, tbs_add_extension, tbs_certificate, CertKind, CertificateParams, Issuer};

use super::*;
use crate::inclusion::{entry_type, InclusionProof};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    issuer: Issuer,
    subject: KeyPair,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("t.redb")).expect("open");
    let issuer = Issuer::self_signed(KeyPair::generate(Algorithm::FnDsa1024), "CN=Test CA").expect("issuer");
    Fixture {
        _dir: dir,
        store,
        issuer,
        subject: KeyPair::generate(Algorithm::FnDsa1024),
    }
}

/// A precertificate entry and the certificate logged at `index`.
fn issue(f: &Fixture, serial: u8, index: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let params = CertificateParams {
        serial: Some(vec![serial; 16]),
        ..CertificateParams::new(CertKind::Leaf, "CN=node", Duration::from_secs(3600)).with_dns_names(["node.mesh"])
    };
    let precert = tbs_certificate(&params, f.subject.public_key(), &f.issuer).expect("body");
    let proof = InclusionProof {
        log_id: 0,
        tree_size: index + 1,
        leaf_index: index,
        path: Vec::new(),
    };
    let tbs = tbs_add_extension(&precert, proof.to_extension().expect("extension")).expect("add");
    let cert = sign_tbs(&tbs, &f.issuer).expect("sign");
    (precertificate_entry(&precert), vec![serial; 16], cert.der().to_vec())
}

fn with_leaves(entries: Vec<Vec<u8>>) -> Vec<(Vec<u8>, Hash)> {
    entries
        .into_iter()
        .map(|e| {
            let h = merkle_leaf_hash(&e);
            (e, h)
        })
        .collect()
}

#[test]
fn entries_and_certificates_read_back_from_one_copy() {
    let f = fixture();
    let (entry0, serial0, der0) = issue(&f, 1, 0);
    let revocation = vec![entry_type::REVOCATION, 9, 9, 9];
    let (entry2, serial2, der2) = issue(&f, 2, 2);
    let batch = BatchCommit {
        start: 0,
        entries: with_leaves(vec![entry0.clone(), revocation.clone(), entry2.clone()]),
        certificates: vec![(0, serial0.clone(), der0.clone()), (2, serial2.clone(), der2.clone())],
        ..Default::default()
    };
    f.store.commit_batch(&batch).expect("commit");
    assert_eq!(
        f.store.entries(0, 3).expect("entries"),
        vec![entry0.clone(), revocation, entry2],
        "entries read back byte for byte, certificates turned back into precertificates"
    );
    assert_eq!(f.store.certificate(&serial0).expect("read"), Some(der0));
    assert_eq!(f.store.certificate(&serial2).expect("read"), Some(der2));
    assert_eq!(f.store.certificate(&[7; 16]).expect("read"), None);
    let leaves = f.store.leaf_hashes().expect("leaves");
    assert_eq!(leaves[0], merkle_leaf_hash(&entry0));
    assert_eq!(f.store.counts().expect("counts").1, 2);
}

#[test]
fn a_certificate_outside_its_batch_is_refused_and_nothing_is_written() {
    let f = fixture();
    let (entry0, serial0, der0) = issue(&f, 1, 0);
    for certificates in [
        // Names an index past the batch.
        vec![(5, serial0.clone(), der0.clone())],
        // Two certificates for one entry.
        vec![(0, serial0.clone(), der0.clone()), (0, vec![2; 16], der0.clone())],
    ] {
        let batch = BatchCommit {
            start: 0,
            entries: with_leaves(vec![entry0.clone()]),
            certificates,
            ..Default::default()
        };
        assert!(f.store.commit_batch(&batch).is_err());
        assert!(f.store.leaf_hashes().expect("leaves").is_empty(), "nothing written");
        assert_eq!(f.store.certificate(&serial0).expect("read"), None);
    }
}

#[test]
fn a_data_dir_of_the_old_layout_is_refused_with_advice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.redb");
    {
        let store = Store::open(&path).expect("open");
        let batch = BatchCommit {
            start: 0,
            entries: with_leaves(vec![vec![entry_type::REVOCATION, 1]]),
            ..Default::default()
        };
        store.commit_batch(&batch).expect("commit");
        // What a build before the layout version wrote: no version.
        store.put_meta(SCHEMA_KEY, None).expect("drop version");
    }
    let err = Store::open(&path).expect_err("old layout refused").to_string();
    assert!(err.contains("fresh data dir"), "{err}");
    // An empty store of any age is simply brought up to date.
    let fresh = dir.path().join("fresh.redb");
    drop(Store::open(&fresh).expect("create"));
    assert!(Store::open(&fresh).is_ok(), "reopening the current layout works");
}
