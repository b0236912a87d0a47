//! Mutual post-quantum handshakes: what succeeds, what is refused and how
//! the refusal reads.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use stoq::crypto::Algorithm;
use stoq::pki::{ChainVerifier, TrustAnchors, POST_QUANTUM_ALGORITHMS};
use stoq::tls::{
    crypto_provider, signature_algorithms, CertResolver, SecurityMode, StackSigningKey, StackVerifier, TlsContext,
};
use stoq::{Endpoint, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_handshake_exposes_peer_identity_and_serves_rpc() {
    init_tracing();
    let pki = TestPki::new();
    let (server, server_id) = node(&pki, "node-b.mesh");
    let (client, client_id) = node(&pki, "node-a.mesh");

    let conn = client.connect(addr(&server), "node-b.mesh").await.unwrap();
    assert_eq!(conn.peer().node_id(), server_id.key.node_id());
    assert_eq!(conn.peer().node_id(), server.node_id());
    assert_eq!(conn.peer().names(), vec!["node-b.mesh".to_string()]);
    assert!(conn.peer().is_post_quantum());

    // The server sees the client's certificate.
    let client_node = client_id.key.node_id();
    wait_until("server to register the connection", || {
        server.connection_to(&client_node).is_some()
    })
    .await;
    let back = server.connection_to(&client_node).unwrap();
    assert_eq!(back.peer().node_id(), client.node_id());
    assert_eq!(back.peer().names(), vec!["node-a.mesh".to_string()]);

    // ALPN and SNI as negotiated. The key exchange group is not exposed by
    // quinn's HandshakeData (only under a private test feature), so
    // X25519MLKEM768 is asserted indirectly: see
    // `classical_key_exchange_is_refused_in_post_quantum_mode`.
    let hd = conn
        .quic()
        .handshake_data()
        .unwrap()
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .unwrap();
    assert_eq!(hd.protocol.as_deref(), Some(stoq::tls::ALPN));
    let shd = back
        .quic()
        .handshake_data()
        .unwrap()
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .unwrap();
    assert_eq!(shd.server_name.as_deref(), Some("node-b.mesh"));

    let reply = conn
        .call("echo", Bytes::from_static(b"ping"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"ping");
    // And the other way round on the same connection.
    let reply = back
        .call("echo", Bytes::from_static(b"pong"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"pong");

    // Connections are reused per (address, name).
    let again = client.connect(addr(&server), "node-b.mesh").await.unwrap();
    assert_eq!(again.quic().stable_id(), conn.quic().stable_id());
    assert_eq!(client.metrics().connections_established.get(), 1);
    assert_eq!(server.metrics().handshake_failures.get(), 0);
}

/// Connects `client` to `server` under `name`, expecting a handshake error
/// (counted on both sides); returns it with its message.
async fn refused(client: &Endpoint, server: &Endpoint, name: &str) -> (Error, String) {
    let before = server.metrics().handshake_failures.get();
    let err = within("refused connect", client.connect(addr(server), name))
        .await
        .unwrap_err();
    let msg = err.to_string();
    wait_until("server to count the failed handshake", || {
        server.metrics().handshake_failures.get() > before
    })
    .await;
    assert!(
        client.metrics().handshake_failures.get() >= 1,
        "client counts its failed handshake"
    );
    (err, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_from_an_untrusted_root_is_refused() {
    init_tracing();
    let pki = TestPki::new();
    let rogue = TestPki::new();
    let server = Endpoint::bind(config(), pq_tls(rogue.identity(&["node-b.mesh"]), &pki)).unwrap();
    let client = Endpoint::bind(config(), pq_tls(pki.identity(&["node-a.mesh"]), &pki)).unwrap();
    let (err, msg) = refused(&client, &server, "node-b.mesh").await;
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let lower = msg.to_lowercase();
    assert!(lower.contains("unknown_ca"), "{msg}");
    assert!(lower.contains("issuer") || lower.contains("trust"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_server_certificate_is_refused() {
    init_tracing();
    let pki = TestPki::new();
    let now = SystemTime::now();
    let expired = pki.identity_valid(&["node-b.mesh"], now - 3 * DAY, now - DAY);
    let server = Endpoint::bind(config(), pq_tls(expired, &pki)).unwrap();
    let client = Endpoint::bind(config(), pq_tls(pki.identity(&["node-a.mesh"]), &pki)).unwrap();
    let (err, msg) = refused(&client, &server, "node-b.mesh").await;
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
    assert!(msg.to_lowercase().contains("expired"), "{msg}");
}

/// The client refused the *server's* certificate (expired, untrusted, wrong
/// name): the error must not tell the operator that the peer refused *our*
/// certificate or to renew *ours*.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locally_refused_certificate_is_not_blamed_on_our_own() {
    init_tracing();
    let pki = TestPki::new();
    let rogue = TestPki::new();
    let now = SystemTime::now();
    let client = Endpoint::bind(config(), pq_tls(pki.identity(&["node-a.mesh"]), &pki)).unwrap();
    let servers = [
        (
            "expired",
            pq_tls(pki.identity_valid(&["node-b.mesh"], now - 3 * DAY, now - DAY), &pki),
            "node-b.mesh",
        ),
        (
            "untrusted",
            pq_tls(rogue.identity(&["node-b.mesh"]), &pki),
            "node-b.mesh",
        ),
        ("wrong name", pq_tls(pki.identity(&["node-b.mesh"]), &pki), "other.mesh"),
    ];
    let mut blamed = Vec::new();
    for (what, tls, name) in servers {
        let server = Endpoint::bind(config(), tls).unwrap();
        let (_, msg) = refused(&client, &server, name).await;
        if msg.contains("our certificate") {
            blamed.push(format!("{what}: {msg}"));
        }
    }
    assert!(
        blamed.is_empty(),
        "the peer's certificate was refused, not ours:\n{}",
        blamed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_name_is_refused() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    let (client, _) = node(&pki, "node-a.mesh");
    let (err, msg) = refused(&client, &server, "other.mesh").await;
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
    assert!(msg.to_lowercase().contains("name"), "{msg}");
    // The right name still works afterwards.
    client.connect(addr(&server), "node-b.mesh").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_client_certificate_is_refused_by_the_server() {
    init_tracing();
    let pki = TestPki::new();
    let rogue = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    // The client trusts the server but presents a certificate of another root.
    let client = Endpoint::bind(config_single_attempt(), pq_tls(rogue.identity(&["node-a.mesh"]), &pki)).unwrap();
    let before = server.metrics().handshake_failures.get();
    let outcome = within("connect", client.connect(addr(&server), "node-b.mesh")).await;
    if let Ok(conn) = outcome {
        // The client's side of the handshake completed before the server
        // checked its certificate: the connection must die at once.
        let reason = within("connection close", conn.quic().closed()).await;
        assert_eq!(tls_alert(&reason), Some(0x30), "unknown_ca expected: {reason}");
        assert!(conn
            .call("echo", Bytes::new(), Some(Duration::from_secs(2)))
            .await
            .is_err());
    }
    wait_until("server to count the failed handshake", || {
        server.metrics().handshake_failures.get() > before
    })
    .await;
    assert!(server.connections().is_empty());
}

/// Mirrors `TlsContext::client_config()` (FN-DSA client certificate, STOQ
/// server verification) with the given key exchange groups only.
fn stoq_like_client(
    pki: &TestPki,
    identity: &stoq::tls::Identity,
    kx_groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> rustls::ClientConfig {
    let mut provider = (*crypto_provider(SecurityMode::PostQuantum)).clone();
    provider.kx_groups = kx_groups;
    let verifier = StackVerifier::new(
        ChainVerifier::new(pki.anchors(), POST_QUANTUM_ALGORITHMS),
        signature_algorithms(SecurityMode::PostQuantum),
    );
    let chain = identity.chain.iter().map(|c| c.der().clone()).collect();
    let key = CertifiedKey::new(chain, Arc::new(StackSigningKey::new(identity.key.clone())));
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(CertResolver::new(Arc::new(key), None)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classical_key_exchange_is_refused_in_post_quantum_mode() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    let identity = pki.identity(&["node-a.mesh"]);

    let x25519 = rustls::crypto::aws_lc_rs::kx_group::X25519;
    let classical = stoq_like_client(&pki, &identity, vec![x25519]);

    let raw = raw_client_endpoint();
    let before = server.metrics().handshake_failures.get();
    let err = raw_dial_expecting_failure(&raw, quinn_client_config(classical), addr(&server), "node-b.mesh").await;
    assert_eq!(tls_alert(&err), Some(0x28), "handshake_failure expected, got {err}");
    wait_until("server to count the failed handshake", || {
        server.metrics().handshake_failures.get() > before
    })
    .await;
    assert!(server.connections().is_empty());

    // Control: the very same client with X25519MLKEM768 only is accepted,
    // so the refusal above is about the key exchange group alone.
    let mlkem = rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768;
    let pq_only = quinn_client_config(stoq_like_client(&pki, &identity, vec![mlkem]));
    let conn = within(
        "pq handshake",
        raw.connect_with(pq_only, addr(&server), "node-b.mesh").unwrap(),
    )
    .await
    .unwrap();
    let (kind, _, body) = raw_call(&conn, 1, "echo", b"hello").await;
    assert_eq!((kind, &body[..]), (2, &b"hello"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused() {
    init_tracing();
    let pki = TestPki::new();
    let (server, _) = node(&pki, "node-b.mesh");
    let verifier = StackVerifier::new(
        ChainVerifier::new(pki.anchors(), POST_QUANTUM_ALGORITHMS),
        signature_algorithms(SecurityMode::PostQuantum),
    );
    let anonymous = rustls::ClientConfig::builder_with_provider(crypto_provider(SecurityMode::PostQuantum))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let raw = raw_client_endpoint();
    let before = server.metrics().handshake_failures.get();
    let err = raw_dial_expecting_failure(&raw, quinn_client_config(anonymous), addr(&server), "node-b.mesh").await;
    // certificate_required (TLS 1.3) is what rustls sends.
    assert_eq!(tls_alert(&err), Some(0x74), "certificate_required expected, got {err}");
    wait_until("server to count the failed handshake", || {
        server.metrics().handshake_failures.get() > before
    })
    .await;
    assert!(server.connections().is_empty());
    assert_eq!(server.metrics().connections_established.get(), 0);
}

/// A plain rustls client: default aws-lc-rs provider, stock webpki server
/// verification against `root`, Ed25519 client certificate.
fn plain_client(root: &TestPki, client: &stoq::tls::Identity) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.root.der().clone()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key.to_pkcs8_der().unwrap().to_vec()));
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(client.chain.iter().map(|c| c.der().clone()).collect(), key)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classical_compat_mode_accepts_a_plain_client_and_post_quantum_mode_does_not() {
    init_tracing();
    let pq = TestPki::new();
    let ed = TestPki::with_algorithm(Algorithm::Ed25519);
    let anchors = TrustAnchors::new([pq.root.clone(), ed.root.clone()]).unwrap();
    let compat_tls = TlsContext::new(
        SecurityMode::ClassicalCompat,
        pq.identity(&["node-b.mesh"]),
        Some(ed.identity(&["node-b.mesh"])),
        anchors,
        vec![],
    )
    .unwrap();
    let compat = Endpoint::bind(config(), compat_tls).unwrap();
    register_echo(&compat);
    let client_id = ed.identity(&["plain.mesh"]);

    let raw = raw_client_endpoint();
    let cfg = quinn_client_config(plain_client(&ed, &client_id));
    let conn = within(
        "compat handshake",
        raw.connect_with(cfg.clone(), addr(&compat), "node-b.mesh").unwrap(),
    )
    .await
    .unwrap();
    let (kind, id, body) = raw_call(&conn, 7, "echo", b"classical").await;
    assert_eq!((kind, id, &body[..]), (2, 7, &b"classical"[..]));
    // The server authenticated the Ed25519 client.
    let peer = client_id.key.node_id();
    wait_until("compat server to register the client", || {
        compat.connection_to(&peer).is_some()
    })
    .await;
    let seen = compat.connection_to(&peer).unwrap();
    assert!(!seen.peer().is_post_quantum());
    assert_eq!(seen.peer().names(), vec!["plain.mesh".to_string()]);
    // The server presented its Ed25519 certificate to this client.
    let presented = conn
        .peer_identity()
        .unwrap()
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .unwrap();
    let leaf = stoq::pki::Certificate::from_der(&presented[0]).unwrap();
    assert_eq!(leaf.public_key().algorithm(), Algorithm::Ed25519);

    // A post-quantum server (trusting both roots, so only the mode differs)
    // refuses the same client.
    let pq_tls_both = TlsContext::new(
        SecurityMode::PostQuantum,
        pq.identity(&["node-b.mesh"]),
        None,
        TrustAnchors::new([pq.root.clone(), ed.root.clone()]).unwrap(),
        vec![],
    )
    .unwrap();
    let strict = Endpoint::bind(config(), pq_tls_both).unwrap();
    let before = strict.metrics().handshake_failures.get();
    let err = raw_dial_expecting_failure(&raw, cfg, addr(&strict), "node-b.mesh").await;
    assert!(tls_alert(&err).is_some(), "expected a TLS alert, got {err}");
    wait_until("strict server to count the failed handshake", || {
        strict.metrics().handshake_failures.get() > before
    })
    .await;
    assert!(strict.connections().is_empty());
}
