//! Revocation reaches a running STOQ verifier: its next handshake with the
//! revoked certificate fails, while a live connection made before is not
//! what the check is about.

mod inproc;

use bytes::Bytes;
use std::time::Duration;

use inproc::{wait_for, Cluster, Node};
use trustchain::policy::Policy;
use trustchain::revocation::{reason, RevocationRequest, RevocationStatement};
use trustchain::time::now_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_a_running_verifier_within_seconds() {
    let cluster = Cluster::start(3, 2, Policy::default()).await;
    let server = Node::enroll(&cluster, &["api.mesh"], None).await;
    server
        .endpoint
        .register("echo", |req: stoq::endpoint::RpcRequest| async move { Ok(req.body) });
    let client = Node::enroll(&cluster, &["worker.mesh"], None).await;

    server.knows(&client).await;
    client.knows(&server).await;
    // Before: the client's certificate is accepted.
    let conn = client.endpoint.connect(server.addr(), "api.mesh").await.unwrap();
    let r = conn.call("echo", Bytes::from_static(b"hi"), None).await.unwrap();
    assert_eq!(&r[..], b"hi");
    conn.close("done");

    // The admin revokes the client's certificate.
    let cert = client.endpoint.tls().current_certificate().unwrap();
    let st = RevocationStatement::for_certificate(&cluster.bundle, &cert, reason::KEY_COMPROMISE, now_ms()).unwrap();
    let req = RevocationRequest::by_admin(st, &cluster.admin).unwrap();
    let started = std::time::Instant::now();
    let signed = cluster.admin_client().revoke(&req).await.unwrap();
    assert_eq!(signed.statement.serial, cert.serial());

    // The server's verifier learns it (gossip or its poll) ...
    wait_for(&server.trust, "the server to learn the revocation", || {
        server.trust.is_revoked(signed.statement.issuer_log, cert.serial())
    })
    .await;
    eprintln!("revocation known to the verifier after {:?}", started.elapsed());
    // ... and the next handshake with the revoked certificate fails.
    let fresh = Node {
        endpoint: stoq::Endpoint::bind(
            stoq::EndpointConfig {
                listen: "[::1]:0".parse().unwrap(),
                ..Default::default()
            },
            client.endpoint.tls().clone(),
        )
        .unwrap(),
        key: client.key.clone(),
        trust: client.trust.clone(),
        shutdown: client.shutdown.clone(),
    };
    let refused = async {
        match fresh.endpoint.connect(server.addr(), "api.mesh").await {
            Err(e) => e.to_string(),
            Ok(c) => match c
                .call("echo", Bytes::from_static(b"x"), Some(Duration::from_secs(5)))
                .await
            {
                Err(e) => e.to_string(),
                Ok(_) => String::new(),
            },
        }
    }
    .await;
    assert!(!refused.is_empty(), "a handshake with a revoked certificate must fail");
    // Revoking twice is refused.
    let again = cluster.admin_client().revoke(&req).await.unwrap_err();
    assert_eq!(
        again.refusal_code(),
        Some(trustchain::Refusal::Revoked.code()),
        "{again}"
    );
    fresh.endpoint.shutdown().await;
    client.stop().await;
    server.stop().await;
}
