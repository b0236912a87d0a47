//! The mesh's DNS: an authoritative zone that follows issuance and
//! revocation, served over UDP, TCP and DNS-over-QUIC, and a DNS-over-QUIC
//! resolver that trusts TrustChain.
//!
//! - [`MeshZone`]: the zone (default origin `mesh.`). For every enrolled
//!   node it holds an AAAA record (the address the enrolment came from), a
//!   TXT record `tc-fp=<hex SHA3-256 of the certificate DER>` and one SRV
//!   record per service (`_stoq._udp.<node>.mesh.`); SOA and NS sit at the
//!   apex. The CA calls [`MeshZone::upsert`] on issuance and
//!   [`MeshZone::remove`] on revocation; every change bumps the SOA serial
//!   and is visible to the next query.
//! - [`DnsServer`]: hickory-server answering for the zone, on IPv6 only
//!   (`IPV6_V6ONLY` sockets): UDP and TCP on one port, and DNS-over-QUIC
//!   (RFC 9250, ALPN `doq`) presenting the node's TrustChain certificate
//!   with the stack's post-quantum TLS (X25519MLKEM768, FN-DSA-1024). DoQ
//!   clients need no certificate. Names outside the zone are REFUSED,
//!   unknown names inside it get NXDOMAIN.
//! - [`MeshResolver`]: hickory-resolver over DNS-over-QUIC, verifying the
//!   server against the TrustChain roots, so that STOQ can dial by name.
//! - [`DnsMetrics`]: Prometheus counters of queries and responses.
//!
//! Every DNS message is parsed by hickory; nothing here decodes wire data.

mod doq;
mod metrics;
mod records;
mod resolver;
mod server;
mod zone;

#[cfg(test)]
mod tests;

pub use doq::DOQ_ALPN;
pub use metrics::DnsMetrics;
pub use records::{NodeRecord, ServiceRecord, ZoneConfig, FINGERPRINT_TXT_PREFIX};
pub use resolver::MeshResolver;
pub use server::{DnsConfig, DnsServer};
pub use zone::MeshZone;

use std::net::{IpAddr, SocketAddr};

/// Everything that can go wrong in the DNS part. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// An address in the configuration is IPv4 (or IPv4-mapped IPv6).
    #[error("{what} {addr} is IPv4: the stack is IPv6-only, use {suggestion}")]
    Ipv4Address {
        /// Which setting holds the address.
        what: &'static str,
        /// The refused address.
        addr: SocketAddr,
        /// An IPv6 replacement to use instead.
        suggestion: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid DNS configuration: {0}")]
    Config(String),
    /// A DNS name is malformed (labels must be letters, digits and inner
    /// hyphens, at most 63 bytes each and 255 in all).
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A name is not inside the zone this server is authoritative for.
    #[error("{name} is outside the zone {origin}: give a name ending in {origin} or one relative to it")]
    OutsideZone {
        /// The name, fully qualified.
        name: String,
        /// The zone's origin.
        origin: String,
    },
    /// A node record carries a value the zone cannot publish.
    #[error("invalid node record for {host}: {reason}")]
    InvalidRecord {
        /// The record's host.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen for DNS over {what} on {addr}: {source} (is another server using the port? choose another one in the configuration)")]
    Bind {
        /// The transport (`UDP`, `TCP`, `QUIC`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// DNS-over-QUIC is configured but no certificate was given to present.
    #[error("doq_listen is set to {0} but no TrustChain certificate was given to the DNS server: pass the node's TLS context, or set doq_listen = \"off\"")]
    DoqWithoutCertificate(SocketAddr),
    /// The TLS configuration for DNS-over-QUIC could not be built.
    #[error("DNS-over-QUIC TLS: {0}")]
    Tls(String),
    /// The server failed while running or shutting down.
    #[error("DNS server: {0}")]
    Server(String),
    /// The name does not exist (NXDOMAIN).
    #[error("{name} does not exist (NXDOMAIN): the node is not enrolled, or its certificate was revoked")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// The name exists but holds no record of the requested type.
    #[error("{name} has no {rtype} record")]
    NoRecords {
        /// The name looked up.
        name: String,
        /// The record type asked for.
        rtype: String,
    },
    /// The DoQ server could not be reached or was not trusted.
    #[error("DNS-over-QUIC lookup of {name} at {server} failed: {reason} (check the server address, that its certificate chains to a trusted TrustChain root and is valid for the server name)")]
    Lookup {
        /// The name looked up.
        name: String,
        /// The DoQ server.
        server: SocketAddr,
        /// hickory's description of the failure.
        reason: String,
    },
}

/// Refuses IPv4 and IPv4-mapped addresses in the setting `what`.
pub(crate) fn require_ipv6(what: &'static str, addr: SocketAddr) -> Result<(), DnsError> {
    let ipv4 = match addr.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    let Some(v4) = ipv4 else { return Ok(()) };
    let port = addr.port();
    let suggestion = if v4.is_loopback() {
        format!("[::1]:{port}")
    } else if v4.is_unspecified() {
        format!("[::]:{port}")
    } else {
        format!("an IPv6 address, e.g. [::1]:{port}")
    };
    Err(DnsError::Ipv4Address { what, addr, suggestion })
}
