//! Swapping an endpoint's certificate while connections live.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use std::time::Duration;

use common::*;
use stoq::crypto::{Algorithm, KeyPair};
use stoq::tls::Identity;
use stoq::Endpoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_certificate_serves_new_connections_and_keeps_old_ones() {
    init_tracing();
    let pki = TestPki::new();
    let (server, old_identity) = node(&pki, "node-b.mesh");
    let (client, _) = node(&pki, "node-a.mesh");
    let old_cert = old_identity.chain[0].clone();

    let old_conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();
    assert_eq!(old_conn.peer().certificate.serial(), old_cert.serial());

    // Same key, new certificate (new serial).
    let renewed = pki.leaf_for(&old_identity.key, &["node-b.mesh"], |_| {});
    assert_ne!(renewed.serial(), old_cert.serial());
    server
        .swap_identity(
            Identity::new(vec![renewed.clone()], old_identity.key.clone()).unwrap(),
            None,
        )
        .unwrap();
    assert_eq!(
        server.tls().current_certificate().unwrap().fingerprint(),
        renewed.fingerprint()
    );

    // The live connection is untouched and keeps working.
    let reply = old_conn
        .call("echo", Bytes::from_static(b"after swap"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"after swap");
    assert!(!old_conn.is_closed());
    assert_eq!(old_conn.peer().certificate.fingerprint(), old_cert.fingerprint());

    // A fresh client (connections are reused per address and name) sees the
    // new certificate; the node id is unchanged because the key is.
    let (fresh, _) = node(&pki, "node-c.mesh");
    let new_conn = fresh.connect(addr(&server), "node-b.mesh").await.unwrap();
    assert_eq!(new_conn.peer().certificate.serial(), renewed.serial());
    assert_eq!(new_conn.peer().certificate.fingerprint(), renewed.fingerprint());
    assert_eq!(new_conn.peer().node_id(), old_identity.key.node_id());
    let reply = new_conn
        .call("echo", Bytes::from_static(b"new"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_to_a_new_key_and_refusals() {
    init_tracing();
    let pki = TestPki::new();
    let (server, old_identity) = node(&pki, "node-b.mesh");
    let (client, _) = node(&pki, "node-a.mesh");
    let old_conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();

    // A classical identity is refused in post-quantum mode, and a failed
    // swap leaves the current certificate in place.
    let ed = TestPki::with_algorithm(Algorithm::Ed25519);
    assert!(server.swap_identity(ed.identity(&["node-b.mesh"]), None).is_err());
    let pq_again = pki.identity(&["node-b.mesh"]);
    assert!(server
        .swap_identity(pq_again, Some(ed.identity(&["node-b.mesh"])))
        .is_err());
    assert_eq!(
        server.tls().current_certificate().unwrap().fingerprint(),
        old_identity.chain[0].fingerprint()
    );

    let new_key = KeyPair::generate(Algorithm::FnDsa1024);
    let new_cert = pki.leaf_for(&new_key, &["node-b.mesh"], |_| {});
    server
        .swap_identity(Identity::new(vec![new_cert.clone()], new_key.clone()).unwrap(), None)
        .unwrap();

    let reply = old_conn
        .call("echo", Bytes::from_static(b"old"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"old");
    assert_eq!(old_conn.peer().node_id(), old_identity.key.node_id());

    let fresh = Endpoint::bind(config(), pq_tls(pki.identity(&["node-c.mesh"]), &pki)).unwrap();
    let new_conn = fresh.connect(addr(&server), "node-b.mesh").await.unwrap();
    assert_eq!(new_conn.peer().certificate.fingerprint(), new_cert.fingerprint());
    assert_eq!(new_conn.peer().node_id(), new_key.node_id());
    let reply = new_conn
        .call("echo", Bytes::from_static(b"new"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"new");
}
