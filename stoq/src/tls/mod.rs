//! TLS 1.3 for QUIC: the crypto provider (X25519MLKEM768, FN-DSA-1024 as
//! signature scheme 0xFEDA), mutual authentication against TrustChain-style
//! roots, and certificates that can be swapped while connections live.

mod config;
mod peer;
mod resolver;
mod sign;
mod verifier;

pub use config::{Identity, SecurityMode, TlsContext, ALPN};
pub use peer::PeerIdentity;
pub use resolver::CertResolver;
pub use sign::StackSigningKey;
pub use verifier::StackVerifier;

use rustls::crypto::{aws_lc_rs, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::SignatureScheme;
use std::sync::Arc;

use crate::pki::{COMPAT_ALGORITHMS, FALCON1024, POST_QUANTUM_ALGORITHMS};

/// TLS code point for FN-DSA-1024 (Open Quantum Safe's falcon1024 value; no
/// IANA assignment exists yet). rustls drops schemes whose low byte is 1 or
/// 2 or whose high byte is below 4: 0xFEDA passes.
pub const FALCON1024_SCHEME: SignatureScheme = SignatureScheme::Unknown(0xFEDA);

static PQ_SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: POST_QUANTUM_ALGORITHMS,
    mapping: &[(FALCON1024_SCHEME, &[FALCON1024])],
};

static COMPAT_SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: COMPAT_ALGORITHMS,
    mapping: &[
        (FALCON1024_SCHEME, &[FALCON1024]),
        (SignatureScheme::ED25519, &[webpki::aws_lc_rs::ED25519]),
    ],
};

/// The signature algorithms a mode accepts, for certificates and handshakes.
pub fn signature_algorithms(mode: SecurityMode) -> WebPkiSupportedAlgorithms {
    match mode {
        SecurityMode::PostQuantum => PQ_SIGNATURE_ALGORITHMS,
        SecurityMode::ClassicalCompat => COMPAT_SIGNATURE_ALGORITHMS,
    }
}

/// The rustls crypto provider for a mode: aws-lc-rs TLS 1.3 cipher suites;
/// key exchange X25519MLKEM768 only in post-quantum mode (a peer offering
/// only classical groups fails with `NoKxGroupsInCommon`), plus X25519 in
/// classical compatibility mode.
pub fn crypto_provider(mode: SecurityMode) -> Arc<CryptoProvider> {
    let base = aws_lc_rs::default_provider();
    let kx_groups = match mode {
        SecurityMode::PostQuantum => vec![aws_lc_rs::kx_group::X25519MLKEM768],
        SecurityMode::ClassicalCompat => vec![aws_lc_rs::kx_group::X25519MLKEM768, aws_lc_rs::kx_group::X25519],
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups,
        signature_verification_algorithms: signature_algorithms(mode),
        ..base
    })
}
