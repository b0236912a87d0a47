//! A node with a 2-minute certificate lifetime stays connected across
//! several rotations, and new handshakes keep working after the first
//! certificate expired.

mod inproc;

use bytes::Bytes;
use std::time::{Duration, SystemTime};

use inproc::{Cluster, Node};
use trustchain::manager::{CertManager, CertManagerConfig};
use trustchain::policy::Policy;

const LIFETIME: Duration = Duration::from_secs(120);
const ROTATIONS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_minute_certificates_rotate_without_dropping_connections() {
    let policy = Policy {
        clock_skew_secs: 5,
        ..Policy::default()
    };
    let cluster = Cluster::start(3, 2, policy).await;
    let server = Node::enroll(&cluster, &["api.mesh"], Some(LIFETIME)).await;
    server
        .endpoint
        .register("echo", |req: stoq::endpoint::RpcRequest| async move { Ok(req.body) });
    let client = Node::enroll(&cluster, &["worker.mesh"], Some(LIFETIME)).await;
    server.knows(&client).await;
    client.knows(&server).await;
    let first = server.endpoint.tls().current_certificate().unwrap();

    let config = CertManagerConfig {
        propagation_delay: Duration::from_secs(2),
        ..CertManagerConfig::default()
    };
    let server_mgr = CertManager::spawn(
        server.endpoint.clone(),
        server.key.clone(),
        server.trust.clone(),
        config.clone(),
        server.shutdown.clone(),
    )
    .unwrap();
    let client_mgr = CertManager::spawn(
        client.endpoint.clone(),
        client.key.clone(),
        client.trust.clone(),
        config,
        client.shutdown.clone(),
    )
    .unwrap();

    let conn = client.endpoint.connect(server.addr(), "api.mesh").await.unwrap();
    let mut rotations = server_mgr.subscribe();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + LIFETIME * (ROTATIONS as u32 + 1);
    let mut calls = 0u32;
    // Traffic on the long-lived connection every 2 s, throughout.
    let mut pace = tokio::time::interval(Duration::from_secs(2));
    while seen.len() < ROTATIONS {
        tokio::select! {
            changed = rotations.changed() => {
                changed.unwrap();
                let cert = rotations.borrow_and_update().clone();
                assert_ne!(cert.serial(), first.serial());
                // A fresh handshake with the new certificate succeeds.
                let probe = stoq::Endpoint::bind(
                    stoq::EndpointConfig { listen: "[::1]:0".parse().unwrap(), ..Default::default() },
                    client.endpoint.tls().clone(),
                )
                .unwrap();
                let c = probe.connect(server.addr(), "api.mesh").await.unwrap();
                let presented = c.peer().certificate.clone();
                assert_eq!(presented.serial(), cert.serial(), "the server presents its renewed certificate");
                assert_eq!(&c.call("echo", Bytes::from_static(b"new"), None).await.unwrap()[..], b"new");
                probe.shutdown().await;
                seen.push(cert);
                eprintln!("rotation {} done", seen.len());
            }
            // The long-lived connection keeps carrying calls throughout.
            _ = pace.tick() => {
                let r = conn.call("echo", Bytes::from_static(b"ping"), Some(Duration::from_secs(5))).await;
                assert_eq!(&r.expect("the connection survives rotations")[..], b"ping");
                calls += 1;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotations did not happen in time"
        );
    }
    assert!(!conn.is_closed());
    assert!(
        SystemTime::now() > first.not_after(),
        "the first certificate has expired by now"
    );
    assert!(client_mgr.metrics().renewals.get() >= 2, "the client rotated too");
    assert_eq!(server_mgr.metrics().alarm.get(), 0);
    eprintln!("{calls} calls over one connection across {ROTATIONS} rotations");
    client.stop().await;
    server.stop().await;
}
