//! Shared helpers of the integration tests: a throw-away PKI, endpoint
//! builders, raw frames and bounded waiting.
#![allow(dead_code, unreachable_pub)]

use bytes::{BufMut, Bytes, BytesMut};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stoq::crypto::{Algorithm, KeyPair};
use stoq::endpoint::RpcRequest;
use stoq::pki::{issue, CertKind, Certificate, CertificateParams, Issuer, TrustAnchors};
use stoq::tls::{Identity, SecurityMode, TlsContext, ALPN};
use stoq::{Endpoint, EndpointConfig};

pub const DAY: Duration = Duration::from_secs(86_400);
/// Upper bound of every wait on a condition.
pub const WAIT: Duration = Duration::from_secs(10);

static ROOTS: AtomicUsize = AtomicUsize::new(0);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A root CA and its issuer.
pub struct TestPki {
    pub root: Certificate,
    pub issuer: Issuer,
    pub alg: Algorithm,
}

impl TestPki {
    /// A fresh FN-DSA-1024 root.
    pub fn new() -> Self {
        Self::with_algorithm(Algorithm::FnDsa1024)
    }

    /// A fresh root of `alg`, with a unique subject.
    pub fn with_algorithm(alg: Algorithm) -> Self {
        let n = ROOTS.fetch_add(1, Ordering::Relaxed);
        let subject = format!("CN=Test Root {n},O=Stack,C=NL");
        let key = KeyPair::generate(alg);
        let issuer = Issuer::self_signed(key.clone(), &subject).unwrap();
        let root = issue(
            &CertificateParams::new(CertKind::Root, &subject, 10 * DAY),
            key.public_key(),
            &issuer,
        )
        .unwrap();
        let issuer = Issuer::from_certificate(&root, key).unwrap();
        TestPki { root, issuer, alg }
    }

    /// Issues a leaf for `key` valid for `names`; `edit` may change the
    /// parameters (validity, serial).
    pub fn leaf_for(&self, key: &KeyPair, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Certificate {
        let cn = format!("CN={}", names.first().copied().unwrap_or("node"));
        let mut params = CertificateParams::new(CertKind::Leaf, cn, DAY).with_dns_names(names.iter().copied());
        edit(&mut params);
        issue(&params, key.public_key(), &self.issuer).unwrap()
    }

    /// A fresh key of this root's algorithm and an identity for it.
    pub fn identity(&self, names: &[&str]) -> Identity {
        let key = KeyPair::generate(self.alg);
        let cert = self.leaf_for(&key, names, |_| {});
        Identity::new(vec![cert], key).unwrap()
    }

    /// An identity valid from `from` until `until`.
    pub fn identity_valid(&self, names: &[&str], from: SystemTime, until: SystemTime) -> Identity {
        let key = KeyPair::generate(self.alg);
        let cert = self.leaf_for(&key, names, |p| {
            p.not_before = from;
            p.not_after = until;
        });
        Identity::new(vec![cert], key).unwrap()
    }

    /// Trust anchors holding only this root.
    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::new([self.root.clone()]).unwrap()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// A post-quantum TLS context trusting `trusted`.
pub fn pq_tls(identity: Identity, trusted: &TestPki) -> TlsContext {
    TlsContext::new(SecurityMode::PostQuantum, identity, None, trusted.anchors(), vec![]).unwrap()
}

/// Default endpoint configuration on `[::1]:0`.
pub fn config() -> EndpointConfig {
    EndpointConfig {
        listen: "[::1]:0".parse().unwrap(),
        ..Default::default()
    }
}

/// Configuration whose `connect` makes a single attempt (failures are
/// returned at once instead of being retried with backoff).
pub fn config_single_attempt() -> EndpointConfig {
    let mut cfg = config();
    cfg.reconnect.max_attempts = 1;
    cfg
}

/// A post-quantum endpoint valid for `name`, serving `echo`.
pub fn node(pki: &TestPki, name: &str) -> (Endpoint, Identity) {
    node_with(pki, name, config())
}

/// Like [`node`] with a given configuration.
pub fn node_with(pki: &TestPki, name: &str, cfg: EndpointConfig) -> (Endpoint, Identity) {
    let identity = pki.identity(&[name]);
    let endpoint = Endpoint::bind(cfg, pq_tls(identity.clone(), pki)).unwrap();
    register_echo(&endpoint);
    (endpoint, identity)
}

/// Serves `echo`, answering with the request body.
pub fn register_echo(endpoint: &Endpoint) {
    endpoint.register("echo", |req: RpcRequest| async move { Ok(req.body) });
}

/// The endpoint's address.
pub fn addr(endpoint: &Endpoint) -> SocketAddr {
    endpoint.local_addr().unwrap()
}

/// Waits until `cond` holds, polling every 10 ms, at most [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let poll = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(WAIT, poll).await.is_err() {
        panic!("timed out after {WAIT:?} waiting for {what}");
    }
}

/// Awaits `fut`, at most [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Encodes a frame header by hand: version, kind, flags, id, length.
pub fn raw_header(version: u8, kind: u8, id: u64, len: u32) -> BytesMut {
    let mut b = BytesMut::with_capacity(16);
    b.put_u8(version);
    b.put_u8(kind);
    b.put_u16(0);
    b.put_u64(id);
    b.put_u32(len);
    b
}

/// A complete RPC request frame, encoded by hand.
pub fn raw_request(id: u64, method: &str, deadline_ms: u32, body: &[u8]) -> Bytes {
    let payload_len = 1 + method.len() + 4 + body.len();
    let mut b = raw_header(1, 1, id, u32::try_from(payload_len).unwrap());
    b.put_u8(u8::try_from(method.len()).unwrap());
    b.put_slice(method.as_bytes());
    b.put_u32(deadline_ms);
    b.put_slice(body);
    b.freeze()
}

/// Makes an RPC call over a raw quinn connection; returns the reply's kind
/// byte, id and payload.
pub async fn raw_call(conn: &quinn::Connection, id: u64, method: &str, body: &[u8]) -> (u8, u64, Vec<u8>) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&raw_request(id, method, 5_000, body)).await.unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    assert!(reply.len() >= 16, "reply shorter than a frame header: {reply:?}");
    assert_eq!(reply[0], 1, "reply frame version");
    let id = u64::from_be_bytes(reply[4..12].try_into().unwrap());
    let len = u32::from_be_bytes(reply[12..16].try_into().unwrap()) as usize;
    assert_eq!(reply.len(), 16 + len, "reply frame length");
    (reply[1], id, reply[16..].to_vec())
}

/// A quinn client endpoint on `[::1]:0` (not a STOQ endpoint).
pub fn raw_client_endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client("[::1]:0".parse().unwrap()).unwrap()
}

/// Wraps a rustls client configuration for quinn, speaking STOQ's ALPN.
pub fn quinn_client_config(mut tls: rustls::ClientConfig) -> quinn::ClientConfig {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// Dials with a raw quinn client. A handshake the server refuses only after
/// the client finished its side (client certificate checks) shows up as the
/// connection being closed right after it was established; either way the
/// error that ended the attempt is returned.
pub async fn raw_dial_expecting_failure(
    client: &quinn::Endpoint,
    cfg: quinn::ClientConfig,
    to: SocketAddr,
    name: &str,
) -> quinn::ConnectionError {
    let connecting = client.connect_with(cfg, to, name).unwrap();
    match within("raw handshake", connecting).await {
        Err(e) => e,
        Ok(conn) => {
            // The connection must not be usable: a call on it fails.
            within("refused connection to close", conn.closed()).await
        }
    }
}

/// The TLS alert carried by a QUIC CRYPTO_ERROR close, if any.
pub fn tls_alert(e: &quinn::ConnectionError) -> Option<u8> {
    let code = match e {
        quinn::ConnectionError::ConnectionClosed(cc) => cc.error_code,
        quinn::ConnectionError::TransportError(te) => te.code,
        _ => return None,
    };
    let code = u64::from(code);
    (0x100..0x200).contains(&code).then(|| (code - 0x100) as u8)
}
