//! Building rustls and quinn configurations for an endpoint.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;

use super::{crypto_provider, signature_algorithms, CertResolver, StackSigningKey, StackVerifier};
use crate::crypto::{read_key_file, Algorithm, KeyPair};
use crate::pki::{Certificate, CertificateCheck, ChainVerifier, TrustAnchors};
use crate::{Error, Result};

/// The ALPN protocol id of STOQ.
pub const ALPN: &[u8] = b"stoq/1";

/// Which cryptography an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityMode {
    /// X25519MLKEM768 key exchange and FN-DSA-1024 certificates only.
    #[default]
    PostQuantum,
    /// Also X25519 and an Ed25519 certificate chain, so that standard QUIC
    /// clients can connect. Off unless configured explicitly.
    ClassicalCompat,
}

/// A certificate chain (end entity first) and its private key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// End-entity certificate first, then intermediates (never the root:
    /// it would push the server flight past QUIC's amplification budget).
    pub chain: Vec<Certificate>,
    /// The end entity's key.
    pub key: KeyPair,
}

impl Identity {
    /// An identity, refusing an empty chain or a key that does not match
    /// the end-entity certificate.
    pub fn new(chain: Vec<Certificate>, key: KeyPair) -> Result<Self> {
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Config("certificate chain is empty".into()))?;
        if leaf.public_key() != key.public_key() {
            return Err(Error::Config("the private key does not match the certificate".into()));
        }
        Ok(Identity { chain, key })
    }

    /// Loads a PEM chain and a PEM PKCS#8 key.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let pem = std::fs::read_to_string(cert_path).map_err(|source| Error::Io {
            context: format!("reading {}", cert_path.display()),
            source,
        })?;
        Self::new(Certificate::all_from_pem(&pem)?, read_key_file(key_path)?)
    }

    fn certified_key(&self) -> Arc<CertifiedKey> {
        let chain = self.chain.iter().map(|c| c.der().clone()).collect();
        Arc::new(CertifiedKey::new(
            chain,
            Arc::new(StackSigningKey::new(self.key.clone())),
        ))
    }
}

/// Everything TLS needs for one endpoint, shared by its server and client
/// sides; [`TlsContext::swap_identity`] rotates the certificate.
#[derive(Debug, Clone)]
pub struct TlsContext {
    mode: SecurityMode,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    verifier: ChainVerifier,
    resumption: bool,
    unenrolled_clients: bool,
}

impl TlsContext {
    /// Builds the context. In post-quantum mode `identity` must be an
    /// FN-DSA-1024 identity and `classical` absent; in compatibility mode
    /// `classical` must be an Ed25519 identity. `anchors` are the trusted
    /// roots (in compatibility mode, the classical root too); `checks` run
    /// on every peer chain after webpki accepted it.
    pub fn new(
        mode: SecurityMode,
        identity: Identity,
        classical: Option<Identity>,
        anchors: TrustAnchors,
        checks: Vec<Arc<dyn CertificateCheck>>,
    ) -> Result<Self> {
        check_identities(mode, &identity, classical.as_ref())?;
        if anchors.is_empty() {
            return Err(Error::Config("no trusted root configured".into()));
        }
        let algorithms = match mode {
            SecurityMode::PostQuantum => crate::pki::POST_QUANTUM_ALGORITHMS,
            SecurityMode::ClassicalCompat => crate::pki::COMPAT_ALGORITHMS,
        };
        let verifier = checks
            .into_iter()
            .fold(ChainVerifier::new(anchors, algorithms), ChainVerifier::with_check);
        let resolver = Arc::new(CertResolver::new(
            identity.certified_key(),
            classical.map(|c| c.certified_key()),
        ));
        Ok(TlsContext {
            mode,
            provider: crypto_provider(mode),
            resolver,
            verifier,
            resumption: true,
            unenrolled_clients: false,
        })
    }

    /// Disables TLS session resumption on the client side (benchmarks of
    /// full handshakes need this).
    pub fn without_resumption(mut self) -> Self {
        self.resumption = false;
        self
    }

    /// Lets clients that are not enrolled yet connect with a self-signed
    /// certificate (an enrollment service does this). The endpoint marks
    /// such peers ([`super::PeerIdentity::enrolled`] is false) and serves
    /// them only the methods registered with
    /// [`crate::Endpoint::register_public`].
    pub fn accept_unenrolled_clients(mut self) -> Self {
        self.unenrolled_clients = true;
        self
    }

    /// Whether clients without an enrolled certificate may connect.
    pub fn accepts_unenrolled_clients(&self) -> bool {
        self.unenrolled_clients
    }

    /// The security mode.
    pub fn mode(&self) -> SecurityMode {
        self.mode
    }

    /// The chain verifier (for checks outside TLS).
    pub fn verifier(&self) -> &ChainVerifier {
        &self.verifier
    }

    /// The certificate resolver shared by every configuration built from
    /// this context: other TLS servers of the same daemon (DNS-over-QUIC)
    /// present the same, hot-swapped certificate through it.
    pub fn cert_resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// The crypto provider of this context's mode.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        self.provider.clone()
    }

    /// The end-entity certificate currently presented.
    pub fn current_certificate(&self) -> Result<Certificate> {
        let ck = self.resolver.current_pq();
        let leaf = ck
            .cert
            .first()
            .ok_or_else(|| Error::Config("no certificate loaded".into()))?;
        Ok(Certificate::from_der(leaf)?)
    }

    /// Replaces the presented certificate(s) for new handshakes; live
    /// connections are untouched.
    pub fn swap_identity(&self, identity: Identity, classical: Option<Identity>) -> Result<()> {
        check_identities(self.mode, &identity, classical.as_ref())?;
        self.resolver
            .swap(identity.certified_key(), classical.map(|c| c.certified_key()));
        Ok(())
    }

    /// The rustls server configuration (client authentication mandatory).
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        let verifier = StackVerifier::new(self.verifier.clone(), signature_algorithms(self.mode))
            .allow_self_signed_clients(self.unenrolled_clients);
        let mut cfg = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(self.resolver.clone());
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        // QUIC requires max_early_data_size 0 or u32::MAX; we do not take 0-RTT.
        cfg.max_early_data_size = 0;
        Ok(cfg)
    }

    /// The rustls client configuration (presents our certificate).
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let verifier = StackVerifier::new(self.verifier.clone(), signature_algorithms(self.mode));
        let mut cfg = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(self.resolver.clone());
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        if !self.resumption {
            cfg.resumption = rustls::client::Resumption::disabled();
        }
        Ok(cfg)
    }

    /// The quinn server crypto configuration.
    pub fn quic_server_config(&self) -> Result<Arc<quinn::crypto::rustls::QuicServerConfig>> {
        let cfg = quinn::crypto::rustls::QuicServerConfig::try_from(self.server_config()?)
            .map_err(|e| Error::Config(format!("QUIC server TLS: {e}")))?;
        Ok(Arc::new(cfg))
    }

    /// The quinn client crypto configuration.
    pub fn quic_client_config(&self) -> Result<Arc<quinn::crypto::rustls::QuicClientConfig>> {
        let cfg = quinn::crypto::rustls::QuicClientConfig::try_from(self.client_config()?)
            .map_err(|e| Error::Config(format!("QUIC client TLS: {e}")))?;
        Ok(Arc::new(cfg))
    }
}

fn check_identities(mode: SecurityMode, identity: &Identity, classical: Option<&Identity>) -> Result<()> {
    if identity.key.algorithm() != Algorithm::FnDsa1024 {
        return Err(Error::Config(format!(
            "the node identity must be FN-DSA-1024, not {}",
            identity.key.algorithm()
        )));
    }
    match (mode, classical) {
        (SecurityMode::PostQuantum, Some(_)) => Err(Error::Config(
            "a classical certificate is configured but classical compatibility mode is off".into(),
        )),
        (SecurityMode::ClassicalCompat, None) => Err(Error::Config(
            "classical compatibility mode needs an Ed25519 certificate and key".into(),
        )),
        (SecurityMode::ClassicalCompat, Some(c)) if c.key.algorithm() != Algorithm::Ed25519 => Err(Error::Config(
            format!("the classical identity must be Ed25519, not {}", c.key.algorithm()),
        )),
        _ => Ok(()),
    }
}
