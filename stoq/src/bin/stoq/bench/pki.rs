//! Certificates, TLS contexts and endpoints shared by the measurements:
//! an FN-DSA-1024 PKI for STOQ, an Ed25519 one for the plain quinn +
//! rustls baseline.

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use stoq::crypto::{Algorithm, KeyPair};
use stoq::endpoint::{bind_ipv6_udp, EndpointConfig};
use stoq::pki::{issue, CertKind, Certificate, CertificateParams, Issuer, TrustAnchors};
use stoq::tls::{Identity, SecurityMode, TlsContext};
use stoq::Endpoint;

/// The name in the server certificates (what clients dial).
pub(crate) const SERVER_NAME: &str = "server.bench.stoq";
/// The name in the client certificates.
pub(crate) const CLIENT_NAME: &str = "client.bench.stoq";
const DAY: Duration = Duration::from_secs(86_400);

/// `[::1]:0`.
pub(crate) fn localhost() -> SocketAddr {
    SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0)
}

/// A root and its issuer, for one algorithm.
pub(crate) struct BenchPki {
    root: Certificate,
    issuer: Issuer,
    anchors: TrustAnchors,
}

impl BenchPki {
    /// A fresh self-signed root of `alg`.
    pub(crate) fn new(alg: Algorithm) -> anyhow::Result<Self> {
        let subject = "CN=STOQ Bench Root,O=Bench,C=NL";
        let key = KeyPair::generate(alg);
        let self_signed = Issuer::self_signed(key.clone(), subject)?;
        let root = issue(
            &CertificateParams::new(CertKind::Root, subject, DAY),
            key.public_key(),
            &self_signed,
        )?;
        let issuer = Issuer::from_certificate(&root, key)?;
        let anchors = TrustAnchors::new([root.clone()])?;
        Ok(BenchPki { root, issuer, anchors })
    }

    /// The root certificate.
    pub(crate) fn root(&self) -> &Certificate {
        &self.root
    }

    /// A leaf of the root's algorithm valid for `name`, with its key.
    pub(crate) fn leaf(&self, name: &str) -> anyhow::Result<(Certificate, KeyPair)> {
        let key = KeyPair::generate(self.issuer.key().algorithm());
        let params = CertificateParams::new(CertKind::Leaf, format!("CN={name}"), DAY).with_dns_names([name]);
        Ok((issue(&params, key.public_key(), &self.issuer)?, key))
    }

    /// A post-quantum TLS context presenting a fresh leaf for `name`
    /// (and the root too when `with_root`, the anti-amplification control).
    pub(crate) fn tls(&self, name: &str, with_root: bool) -> anyhow::Result<TlsContext> {
        let (leaf, key) = self.leaf(name)?;
        let mut chain = vec![leaf];
        if with_root {
            chain.push(self.root.clone());
        }
        let identity = Identity::new(chain, key)?;
        Ok(TlsContext::new(
            SecurityMode::PostQuantum,
            identity,
            None,
            self.anchors.clone(),
            Vec::new(),
        )?)
    }
}

/// The STOQ configuration of the benchmark servers: defaults, except that
/// the per-/64 connection rate limiter cannot refuse anything (every
/// connection comes from `::1`).
pub(crate) fn stoq_config() -> EndpointConfig {
    let mut config = EndpointConfig {
        listen: localhost(),
        ..EndpointConfig::default()
    };
    config.limits.new_connections_per_sec_per_prefix = 1e9;
    config.limits.new_connection_burst_per_prefix = 1e9;
    config
}

/// A STOQ endpoint on `[::1]:0`.
pub(crate) fn stoq_endpoint(tls: TlsContext) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::bind(stoq_config(), tls)?)
}

/// The transport settings a STOQ endpoint applies on top of quinn's
/// defaults (a copy of the library's private `transport_config`), for the
/// raw quinn receiver of the STOQ throughput run.
pub(crate) fn stoq_transport(config: &EndpointConfig) -> anyhow::Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(config.limits.max_concurrent_bidi_streams.into());
    t.max_concurrent_uni_streams(config.limits.max_concurrent_uni_streams.into());
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(config.timeouts.idle).context("idle timeout")?,
    ));
    t.keep_alive_interval(Some(config.timeouts.keep_alive));
    t.datagram_receive_buffer_size(Some(config.limits.datagram_receive_buffer));
    Ok(t)
}

/// A quinn server endpoint with STOQ's TLS server configuration and
/// transport settings, on an IPv6-only socket like STOQ's.
pub(crate) fn quinn_with_stoq_tls(tls: &TlsContext) -> anyhow::Result<quinn::Endpoint> {
    let mut server = quinn::ServerConfig::with_crypto(tls.quic_server_config()?);
    server.transport_config(Arc::new(stoq_transport(&stoq_config())?));
    let socket = bind_ipv6_udp(localhost(), EndpointConfig::default().limits.socket_receive_buffer)?;
    let runtime = Arc::new(quinn::TokioRuntime);
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        runtime,
    )?)
}

/// A client-only quinn endpoint on `[::1]:0`.
pub(crate) fn quinn_client_endpoint() -> anyhow::Result<quinn::Endpoint> {
    Ok(quinn::Endpoint::client(localhost())?)
}

/// The classical baseline: an Ed25519 root and server leaf, served by
/// plain rustls with its default (aws-lc-rs) provider.
pub(crate) struct Classical {
    root: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Classical {
    /// A fresh Ed25519 root and leaf for [`SERVER_NAME`].
    pub(crate) fn new() -> anyhow::Result<Self> {
        let pki = BenchPki::new(Algorithm::Ed25519)?;
        let (leaf, key) = pki.leaf(SERVER_NAME)?;
        Ok(Classical {
            root: pki.root().der().clone(),
            leaf: leaf.der().clone(),
            key: key.to_pkcs8_der()?.to_vec(),
        })
    }

    /// `rustls::ServerConfig::builder().with_no_client_auth()
    /// .with_single_cert(leaf)` as a quinn server configuration (quinn's
    /// default transport).
    pub(crate) fn server_config(&self) -> anyhow::Result<quinn::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], key)?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }

    /// A rustls default client trusting the root, without client
    /// authentication; resumption as asked.
    pub(crate) fn client_config(&self, resumption: bool) -> anyhow::Result<quinn::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.clone())?;
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !resumption {
            tls.resumption = rustls::client::Resumption::disabled();
        }
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }

    /// A plain quinn server endpoint on `[::1]:0`.
    pub(crate) fn server(&self) -> anyhow::Result<quinn::Endpoint> {
        Ok(quinn::Endpoint::server(self.server_config()?, localhost())?)
    }
}

/// What the rustls default provider negotiates with itself: the first of
/// its key exchange groups and cipher suites.
pub(crate) fn rustls_default_suite() -> String {
    let p = rustls::crypto::aws_lc_rs::default_provider();
    let kx = p
        .kx_groups
        .first()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default();
    let cs = p
        .cipher_suites
        .first()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    format!("{kx}, {cs}")
}

/// Connects a raw quinn client to a server endpoint and returns both ends.
pub(crate) async fn quinn_pair(
    server: &quinn::Endpoint,
    client: &quinn::Endpoint,
    config: quinn::ClientConfig,
) -> anyhow::Result<(quinn::Connection, quinn::Connection)> {
    let addr = server.local_addr()?;
    let accept = async {
        let incoming = server.accept().await.context("server endpoint closed")?;
        anyhow::Ok(incoming.await?)
    };
    let connect = async { anyhow::Ok(client.connect_with(config, addr, SERVER_NAME)?.await?) };
    let (s, c) = tokio::try_join!(accept, connect)?;
    Ok((c, s))
}

/// Accepts every connection on a plain quinn server endpoint and holds it
/// until the peer closes it (as a STOQ endpoint does).
pub(crate) fn accept_all(ep: &quinn::Endpoint) -> tokio::task::JoinHandle<()> {
    let ep = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    conn.closed().await;
                }
            });
        }
    })
}

/// Closes a raw quinn endpoint and waits (briefly) until it is idle.
pub(crate) async fn close_quinn(ep: &quinn::Endpoint) {
    ep.close(0u32.into(), b"bench done");
    let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
}
