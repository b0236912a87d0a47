//! An in-process TrustChain cluster and enrolled STOQ nodes for tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stoq::crypto::{read_key_file, Algorithm, KeyPair};
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::{Endpoint, EndpointConfig};
use tokio_util::sync::CancellationToken;
use trustchain::ceremony::{self, CeremonyOptions};
use trustchain::client::{CaClient, Enrollment};
use trustchain::manager::TrustSync;
use trustchain::member::{MemberConfig, MemberNode};
use trustchain::messages::TokenCreate;
use trustchain::policy::Policy;
use trustchain::trust::TrustStore;
use trustchain::TrustBundle;

/// Upper bound of every wait on a condition.
pub const WAIT: Duration = Duration::from_secs(20);

/// A free UDP port on [::1] (bound then released).
pub fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("[::1]:0").unwrap();
    s.local_addr().unwrap().port()
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bundle: Arc<TrustBundle>,
    pub admin: KeyPair,
    pub members: Vec<Option<MemberNode>>,
    pub member_dirs: Vec<PathBuf>,
    pub policy: Policy,
    /// DNS (UDP/TCP, DoQ) port per member, when enabled.
    pub dns_ports: Vec<(u16, u16)>,
    /// Whether members serve DNS (on ephemeral ports).
    pub dns: bool,
}

impl Cluster {
    /// Starts `n` members with threshold `k`.
    pub async fn start(n: usize, k: u16, policy: Policy) -> Cluster {
        Self::start_with_dns(n, k, policy, false).await
    }

    /// Starts `n` members with threshold `k`, optionally serving DNS.
    pub async fn start_with_dns(n: usize, k: u16, policy: Policy, dns: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let base = loop {
            let p = free_port();
            if p < 60_000 && (1..n as u16).all(|i| std::net::UdpSocket::bind(("::1", p + i)).is_ok()) {
                break p;
            }
        };
        let out = ceremony::run(
            &CeremonyOptions {
                members: n,
                threshold: k,
                zone: "mesh.".into(),
                host: Ipv6Addr::LOCALHOST,
                base_port: base,
                http_base_port: 0,
                dns_base_port: 0,
                doq_base_port: 0,
                out_dir: dir.path().join("ca"),
            },
            |_| {},
        )
        .unwrap();
        let admin = read_key_file(&out.admin_key).unwrap();
        let mut c = Cluster {
            bundle: Arc::new(out.bundle),
            admin,
            members: Vec::new(),
            member_dirs: out.member_dirs,
            policy,
            dir,
            dns,
            dns_ports: Vec::new(),
        };
        for i in 0..n {
            let m = c.start_member(i).await;
            c.note_started(i, &m);
            c.members.push(Some(m));
        }
        c
    }

    /// Records the DNS ports member `i` (just started as `m`) was given:
    /// they are ephemeral, so that a restart cannot collide with a port
    /// another test took meanwhile.
    pub fn note_started(&mut self, i: usize, m: &MemberNode) {
        if let Some((udp, doq)) = m.dns_addrs() {
            let ports = (udp.port(), doq.map_or(0, |a| a.port()));
            match self.dns_ports.get_mut(i) {
                Some(p) => *p = ports,
                None => self.dns_ports.push(ports),
            }
        }
    }

    pub fn config(&self, i: usize) -> MemberConfig {
        MemberConfig {
            data_dir: self.member_dirs[i].clone(),
            listen: Some(self.bundle.members[i].address),
            http_listen: None,
            policy: self.policy.clone(),
            sync_interval_ms: 500,
            dns: self.dns.then(|| trustchain::dns::DnsConfig {
                listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                doq_listen: Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
                ..Default::default()
            }),
            ..MemberConfig::default()
        }
    }

    pub async fn start_member(&self, i: usize) -> MemberNode {
        MemberNode::start(self.config(i)).await.unwrap()
    }

    pub fn admin_client(&self) -> CaClient {
        CaClient::unenrolled(&self.admin, self.bundle.clone()).unwrap()
    }

    pub async fn token(&self, names: &[&str]) -> trustchain::token::EnrollmentToken {
        self.admin_client()
            .create_token(
                0,
                &TokenCreate {
                    names: names.iter().map(|s| s.to_string()).collect(),
                    ttl_secs: 600,
                    max_lifetime_secs: 0,
                },
            )
            .await
            .unwrap()
    }
}

/// An enrolled STOQ node: endpoint, key, trust store kept in sync.
pub struct Node {
    pub endpoint: Endpoint,
    pub key: KeyPair,
    pub trust: Arc<TrustStore>,
    pub shutdown: CancellationToken,
}

impl Node {
    /// Enrolls `names` with a fresh token and starts an endpoint on [::1].
    pub async fn enroll(cluster: &Cluster, names: &[&str], lifetime: Option<Duration>) -> Node {
        let token = cluster.token(names).await;
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let client = CaClient::unenrolled(&key, cluster.bundle.clone()).unwrap();
        let issued = client
            .enroll(
                &key,
                &token,
                &Enrollment {
                    names: names.iter().map(|s| s.to_string()).collect(),
                    lifetime,
                    ..Enrollment::default()
                },
            )
            .await
            .unwrap();
        let trust = TrustStore::new(cluster.bundle.clone());
        client.sync(&trust).await.unwrap();
        client.endpoint().shutdown().await;
        trust.add_checkpoint(issued.checkpoint.clone()).unwrap();
        let tls = TlsContext::new(
            SecurityMode::PostQuantum,
            Identity::new(vec![issued.certificate], key.clone()).unwrap(),
            None,
            cluster.bundle.trust_anchors().unwrap(),
            vec![trust.check()],
        )
        .unwrap();
        let endpoint = Endpoint::bind(
            EndpointConfig {
                listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ..EndpointConfig::default()
            },
            tls,
        )
        .unwrap();
        let shutdown = CancellationToken::new();
        TrustSync::spawn(
            endpoint.clone(),
            trust.clone(),
            Duration::from_millis(300),
            shutdown.clone(),
        );
        Node {
            endpoint,
            key,
            trust,
            shutdown,
        }
    }

    /// Waits until this node's verifier accepts `other`'s certificate.
    pub async fn knows(&self, other: &Node) {
        let cert = other.endpoint.tls().current_certificate().unwrap();
        wait_for(&self.trust, "the peer's checkpoint", || {
            self.trust.verify_certificate(&cert).is_ok()
        })
        .await;
    }

    pub fn addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.endpoint.shutdown().await;
    }
}

/// Waits until `f` holds, re-checking whenever `trust` learns a
/// checkpoint or revocation, at most `WAIT`.
pub async fn wait_for(trust: &TrustStore, what: &str, mut f: impl FnMut() -> bool) {
    let mut changes = trust.subscribe();
    tokio::time::timeout(WAIT, changes.wait_for(|_| f()))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap();
}
