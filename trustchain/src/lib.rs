//! TrustChain: the stack's post-quantum certificate authority.
//!
//! A CA is n member nodes with FALCON-1024 keys and a threshold k > n/2
//! ([`bundle`]). A member validates an enrollment request ([`request`],
//! [`token`], [`policy`]), logs the certificate body in its transparency
//! log ([`log`]), and has at least k members co-sign the new head after each
//! checked the entries and the head's consistency ([`witness`],
//! [`checkpoint`]); the certificate then carries a short inclusion proof
//! into that co-signed head ([`inclusion`]). Verifiers keep the co-signed
//! heads and revocations ([`revocation`]) in a [`trust::TrustStore`] whose
//! check STOQ runs on every handshake.
//!
//! - [`store`]: persistent member state in redb.
//! - [`dns`]: the authoritative DNS zone of the mesh (UDP, TCP and
//!   DNS-over-QUIC) and a DNS-over-QUIC resolver that trusts TrustChain.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod ceremony;
pub mod checkpoint;
pub mod client;
pub mod dns;
pub mod error;
pub mod inclusion;
pub mod log;
pub mod manager;
pub mod member;
pub mod messages;
pub mod policy;
pub mod request;
pub mod revocation;
pub mod store;
pub mod time;
pub mod token;
pub mod trust;
pub mod wire;
pub mod witness;

pub use bundle::TrustBundle;
pub use error::{Error, Refusal, Result};
