//! TLS for DNS-over-QUIC (RFC 9250) with the stack's crypto: the server
//! presents the node's TrustChain certificate through the shared,
//! hot-swappable resolver; clients verify it against TrustChain roots.

use rustls::version::TLS13;
use std::sync::Arc;
use stoq::pki::{ChainVerifier, TrustAnchors, COMPAT_ALGORITHMS, POST_QUANTUM_ALGORITHMS};
use stoq::tls::{crypto_provider, signature_algorithms, SecurityMode, StackVerifier, TlsContext};

use super::DnsError;

/// The ALPN protocol id of DNS-over-QUIC (RFC 9250).
pub const DOQ_ALPN: &[u8] = b"doq";

/// The DoQ server's TLS: the context's provider (X25519MLKEM768, FN-DSA),
/// its certificate resolver (a rotation applies to new DoQ handshakes at
/// once) and no client authentication: DoQ clients need not be members.
pub(crate) fn server_config(tls: &TlsContext) -> Result<rustls::ServerConfig, DnsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(tls.provider())
        .with_protocol_versions(&[&TLS13])
        .map_err(|e| DnsError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(tls.cert_resolver());
    cfg.alpn_protocols = vec![DOQ_ALPN.to_vec()];
    // RFC 9250 allows 0-RTT only for replay-safe queries; we take none.
    cfg.max_early_data_size = 0;
    Ok(cfg)
}

/// A DoQ client's TLS from a member's context: TrustChain roots and the
/// member's certificate (the server does not ask for it).
pub(crate) fn client_config(tls: &TlsContext) -> Result<rustls::ClientConfig, DnsError> {
    let mut cfg = tls.client_config().map_err(|e| DnsError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![DOQ_ALPN.to_vec()];
    Ok(cfg)
}

/// A DoQ client's TLS for a non-member: only the roots to trust.
pub(crate) fn anonymous_client_config(
    mode: SecurityMode,
    anchors: TrustAnchors,
) -> Result<rustls::ClientConfig, DnsError> {
    if anchors.is_empty() {
        return Err(DnsError::Tls(
            "no trusted root given: pass the TrustChain root certificate(s)".into(),
        ));
    }
    let algorithms = match mode {
        SecurityMode::PostQuantum => POST_QUANTUM_ALGORITHMS,
        SecurityMode::ClassicalCompat => COMPAT_ALGORITHMS,
    };
    let verifier = StackVerifier::new(ChainVerifier::new(anchors, algorithms), signature_algorithms(mode));
    let mut cfg = rustls::ClientConfig::builder_with_provider(crypto_provider(mode))
        .with_protocol_versions(&[&TLS13])
        .map_err(|e| DnsError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![DOQ_ALPN.to_vec()];
    Ok(cfg)
}

/// Attempts one DoQ handshake with `server`, to tell why lookups failed
/// (hickory reports a failed handshake only as "no connections
/// available"). `Err` holds the handshake's error.
pub(crate) async fn probe(
    server: std::net::SocketAddr,
    server_name: &str,
    tls: &rustls::ClientConfig,
) -> Result<(), String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = (|| {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(true)?;
        socket.bind(&std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)).into())?;
        Ok::<_, std::io::Error>(std::net::UdpSocket::from(socket))
    })()
    .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| format!("cannot start QUIC: {e}"))?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.clone()).map_err(|e| e.to_string())?;
    let connecting = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), server, server_name)
        .map_err(|e| e.to_string())?;
    let result = match tokio::time::timeout(std::time::Duration::from_secs(3), connecting).await {
        Err(_) => Err("no QUIC handshake within 3 s (is a DoQ server listening there?)".to_string()),
        Ok(Err(e)) => Err(format!("QUIC handshake failed: {e}")),
        Ok(Ok(conn)) => {
            conn.close(0u32.into(), b"");
            Ok(())
        }
    };
    endpoint.close(0u32.into(), b"");
    result
}
