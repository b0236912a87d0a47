//! STOQ: the post-quantum QUIC transport of the stack.
//!
//! - [`crypto`]: FN-DSA-1024 (FALCON) and Ed25519 keys and signatures behind
//!   algorithm-agile types, SHA3-256 helpers and node ids.
//! - [`pki`]: X.509 certificates signed with FN-DSA-1024 and chain
//!   verification against trust anchors, with hooks for TrustChain's checks.
//! - [`tls`]: the rustls crypto provider (X25519MLKEM768, FALCON signature
//!   scheme), mutual authentication and hot-swappable certificates.
//! - [`frame`]: the length-prefixed, versioned frame codec (sans-IO).
//! - [`gossip`]: topic publish/subscribe with de-duplication (sans-IO core).
//! - [`endpoint`]: the IPv6-only QUIC endpoint with RPC, gossip and datagrams.
//! - [`relay`]: a measurement utility for benchmarks and tests, not part of
//!   the transport: a UDP delay relay on `[::1]` that logs datagrams, to
//!   count a handshake's round trips and read its first flights.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod daemon;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod gossip;
pub mod pki;
/// Measurement utility for benchmarks and tests: a delay relay that logs
/// datagrams.
pub mod relay;
pub mod tls;

pub use endpoint::{Connection, Endpoint, EndpointConfig, Incoming};
pub use error::{Error, Result};
