//! The crate's error type.

use crate::frame::FrameError;

/// Everything that can go wrong in STOQ.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key, signature or encoding was malformed or did not verify.
    #[error("crypto: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A frame on the wire was malformed, oversized or of an unknown version.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// A certificate or chain was refused or could not be built.
    #[error("certificate: {0}")]
    Certificate(#[from] crate::pki::CertificateError),
    /// A gossip message was malformed or refused.
    #[error("gossip: {0}")]
    Gossip(#[from] crate::gossip::GossipError),
    /// The configuration is inconsistent; the message says what to change.
    #[error("configuration: {0}")]
    Config(String),
    /// An IPv4 address was given; STOQ is IPv6-only.
    #[error("IPv4 address {0} refused: STOQ is IPv6-only; use an IPv6 address such as [::1]:4433 or [::]:4433")]
    Ipv4Refused(std::net::SocketAddr),
    /// The TLS handshake failed; the reason says which side refused what.
    #[error("handshake with {peer} failed: {reason}")]
    Handshake {
        /// The peer's address.
        peer: std::net::SocketAddr,
        /// What went wrong and what to check.
        reason: String,
    },
    /// A connection could not be made or was lost.
    #[error("connection to {peer}: {reason}")]
    Connection {
        /// The peer's address.
        peer: std::net::SocketAddr,
        /// What happened.
        reason: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The limit.
        after: std::time::Duration,
    },
    /// An RPC failed.
    #[error("rpc: {0}")]
    Rpc(#[from] crate::endpoint::RpcError),
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, e.g. the path being read.
        context: String,
        /// The underlying error (part of the message, so not also a
        /// `source`: error chains would print it twice).
        source: std::io::Error,
    },
}

impl Error {
    /// Whether retrying the operation may succeed (transient network
    /// failures), as opposed to configuration or trust problems.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Connection { retryable: true, .. } | Error::Timeout { .. })
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
