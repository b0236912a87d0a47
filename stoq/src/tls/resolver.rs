//! Certificate selection with hot swap.
//!
//! One resolver serves both roles of an endpoint (server and client
//! certificates). Swapping stores a new set atomically: handshakes that
//! start afterwards use it, connections already established keep the keys
//! they negotiated, so a 24-hour rotation drops nothing.

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::sync::Arc;

/// The certificates currently presented: the post-quantum one, and in
/// classical compatibility mode an Ed25519 one for peers that do not offer
/// FN-DSA.
#[derive(Debug)]
struct CertSet {
    pq: Arc<CertifiedKey>,
    classical: Option<Arc<CertifiedKey>>,
}

/// Picks the certificate for each handshake; see the module docs.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertSet>,
}

impl CertResolver {
    /// A resolver presenting `pq` (and `classical` to classical-only peers).
    pub fn new(pq: Arc<CertifiedKey>, classical: Option<Arc<CertifiedKey>>) -> Self {
        CertResolver {
            current: ArcSwap::from_pointee(CertSet { pq, classical }),
        }
    }

    /// Replaces the certificates for future handshakes.
    pub fn swap(&self, pq: Arc<CertifiedKey>, classical: Option<Arc<CertifiedKey>>) {
        self.current.store(Arc::new(CertSet { pq, classical }));
    }

    /// The post-quantum certificate chain currently presented.
    pub fn current_pq(&self) -> Arc<CertifiedKey> {
        self.current.load().pq.clone()
    }

    fn pick(&self, offered: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        if set.pq.key.choose_scheme(offered).is_some() {
            return Some(set.pq.clone());
        }
        set.classical
            .as_ref()
            .filter(|c| c.key.choose_scheme(offered).is_some())
            .cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.signature_schemes())
    }
}

impl ResolvesClientCert for CertResolver {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.pick(sigschemes)
    }

    fn has_certs(&self) -> bool {
        true
    }
}
