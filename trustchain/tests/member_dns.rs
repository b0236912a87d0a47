//! The member's DNS follows issuance and revocation: `dig` over UDP and TCP
//! sees an enrolled node's AAAA and fingerprint TXT, the DoQ resolver too,
//! and the names disappear when the certificate is revoked.

mod inproc;

use std::process::Command;

use inproc::{Cluster, Node};
use trustchain::dns::MeshResolver;
use trustchain::policy::Policy;
use trustchain::revocation::{reason, RevocationRequest, RevocationStatement};
use trustchain::time::now_ms;

fn dig(port: u16, tcp: bool, qtype: &str, name: &str) -> String {
    let mut cmd = Command::new("dig");
    cmd.args([
        "@::1",
        "-p",
        &port.to_string(),
        "+short",
        "+time=2",
        "+tries=1",
        qtype,
        name,
    ]);
    if tcp {
        cmd.arg("+tcp");
    }
    let out = cmd.output().expect("dig is missing: apt-get install -y bind9-dnsutils");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_dns_follows_issuance_and_revocation() {
    let cluster = Cluster::start_with_dns(1, 1, Policy::default(), true).await;
    let (udp, doq) = cluster.dns_ports[0];
    let node = Node::enroll(&cluster, &["db-1.mesh"], None).await;
    let cert = node.endpoint.tls().current_certificate().unwrap();
    let fp = format!("\"tc-fp={}\"", stoq::crypto::hex(&cert.fingerprint()));
    for tcp in [false, true] {
        assert_eq!(dig(udp, tcp, "AAAA", "db-1.mesh."), "::1", "tcp={tcp}");
        assert_eq!(dig(udp, tcp, "TXT", "db-1.mesh."), fp, "tcp={tcp}");
    }
    let resolver = MeshResolver::new(
        format!("[::1]:{doq}").parse().unwrap(),
        &cluster.bundle.members[0].dns_name(&cluster.bundle.zone),
        node.endpoint.tls(),
    )
    .unwrap();
    assert_eq!(
        resolver.lookup_aaaa("db-1.mesh.").await.unwrap(),
        vec!["::1".parse::<std::net::Ipv6Addr>().unwrap()]
    );

    let st =
        RevocationStatement::for_certificate(&cluster.bundle, &cert, reason::CESSATION_OF_OPERATION, now_ms()).unwrap();
    cluster
        .admin_client()
        .revoke(&RevocationRequest::by_admin(st, &cluster.admin).unwrap())
        .await
        .unwrap();
    assert_eq!(
        dig(udp, false, "AAAA", "db-1.mesh."),
        "",
        "the name is withdrawn on revocation"
    );
    node.stop().await;
}
