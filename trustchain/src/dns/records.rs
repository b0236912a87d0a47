//! The records the zone publishes, its settings, and the validation of
//! everything a caller hands in (names, addresses, services).

use hickory_server::proto::rr::Name;
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

use super::DnsError;

/// Prefix of the TXT record holding a node's certificate fingerprint.
pub const FINGERPRINT_TXT_PREFIX: &str = "tc-fp=";

pub(super) const MAX_TTL: u32 = 7 * 86_400;
pub(super) const SOA_REFRESH: i32 = 3_600;
pub(super) const SOA_RETRY: i32 = 600;
pub(super) const SOA_EXPIRE: i32 = 7 * 86_400;

/// The zone's settings. Names without a trailing dot are relative to the
/// origin (a name already ending in the origin, like `ns1.mesh`, is taken
/// as absolute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's apex, e.g. `mesh.`.
    pub origin: String,
    /// TTL in seconds of every record, and the negative-caching TTL.
    pub ttl: u32,
    /// The name server named by the SOA and NS records.
    pub ns_name: String,
    /// An AAAA record for `ns_name` (only if it is inside the zone).
    pub ns_address: Option<Ipv6Addr>,
    /// The zone administrator's mailbox, `user@domain` (SOA RNAME).
    pub admin_email: String,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            origin: "mesh.".into(),
            ttl: 60,
            ns_name: "ns1".into(),
            ns_address: None,
            admin_email: "hostmaster@mesh".into(),
        }
    }
}

/// A service a node offers, published as an SRV record at
/// `<service>.<host>`, e.g. `_stoq._udp.node-1.mesh.`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// Service and protocol labels, each starting with `_`: `_stoq._udp`.
    pub service: String,
    /// The port the service listens on (not 0).
    pub port: u16,
    /// SRV priority (lower is preferred).
    pub priority: u16,
    /// SRV weight among equal priorities.
    pub weight: u16,
}

/// What the zone publishes for one enrolled node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    /// The node's name: labels relative to the origin (`node-1a2b3c`) or a
    /// fully qualified name inside the zone (`node-1a2b3c.mesh.`). Records
    /// returned by [`MeshZone::records`](super::MeshZone::records) hold the lowercase FQDN.
    pub host: String,
    /// The node's address (the one its enrolment request came from).
    pub address: Ipv6Addr,
    /// SHA3-256 of the node's current certificate DER.
    pub fingerprint: [u8; 32],
    /// Services published as SRV records.
    pub services: Vec<ServiceRecord>,
}

impl NodeRecord {
    /// The TXT string published for the fingerprint: `tc-fp=<64 hex>`.
    pub fn fingerprint_txt(&self) -> String {
        format!("{FINGERPRINT_TXT_PREFIX}{}", stoq::crypto::hex(&self.fingerprint))
    }

    /// Parses a TXT string published by [`NodeRecord::fingerprint_txt`].
    pub fn parse_fingerprint_txt(txt: &str) -> Option<[u8; 32]> {
        let hex = txt.strip_prefix(FINGERPRINT_TXT_PREFIX)?;
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    }
}

pub(super) fn is_strictly_inside(origin: &Name, name: &Name) -> bool {
    origin.zone_of(name) && name != origin
}

/// Resolves `input` against the origin: a trailing dot or a name already
/// ending in the origin is absolute, anything else is relative.
pub(super) fn qualify(origin: &Name, origin_body: &str, input: &str) -> Result<Name, DnsError> {
    let lower = input.to_ascii_lowercase();
    let (body, absolute) = match lower.strip_suffix('.') {
        Some(b) => (b, true),
        None => (lower.as_str(), false),
    };
    if body.is_empty() {
        return Err(DnsError::InvalidName {
            name: input.into(),
            reason: "empty name".into(),
        });
    }
    let ends_in_origin = body == origin_body || body.ends_with(&format!(".{origin_body}"));
    if absolute || ends_in_origin {
        build_name(input, body)
    } else {
        let origin_text = origin.to_ascii();
        build_name(input, &format!("{body}.{}", origin_text.trim_end_matches('.')))
    }
}

/// Checks every label of `body` (a dotted name without the final dot) and
/// builds the FQDN. `input` is what the user gave, for messages.
pub(super) fn build_name(input: &str, body: &str) -> Result<Name, DnsError> {
    let invalid = |reason: String| DnsError::InvalidName {
        name: input.into(),
        reason,
    };
    let mut wire_len = 1;
    for label in body.split('.') {
        check_label(label).map_err(&invalid)?;
        wire_len += label.len() + 1;
    }
    if wire_len > 255 {
        return Err(invalid(format!("{wire_len} bytes long, the maximum is 255")));
    }
    Name::from_ascii(format!("{body}.")).map_err(|e| invalid(e.to_string()))
}

/// A host label: letters, digits and inner hyphens, 1 to 63 bytes; service
/// labels (`_stoq`) may start with one underscore.
pub(super) fn check_label(label: &str) -> Result<(), String> {
    let ldh = label.strip_prefix('_').unwrap_or(label);
    if label.is_empty() {
        return Err("empty label (two dots in a row?)".into());
    }
    if label.len() > 63 {
        return Err(format!("label {label:?} is longer than 63 bytes"));
    }
    if ldh.is_empty() || !ldh.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("label {label:?} may hold only letters, digits and hyphens"));
    }
    if ldh.starts_with('-') || ldh.ends_with('-') {
        return Err(format!("label {label:?} starts or ends with a hyphen"));
    }
    Ok(())
}

/// Services are one or more `_label`s (`_stoq._udp`); host labels never
/// start with `_`, so SRV names cannot collide with node names.
pub(super) fn check_service(service: &str) -> Result<(), String> {
    if service.is_empty() {
        return Err("empty service name".into());
    }
    for label in service.split('.') {
        if !label.starts_with('_') {
            return Err(format!(
                "every label must start with '_', as in _stoq._udp (not {label:?})"
            ));
        }
        check_label(label)?;
    }
    Ok(())
}

pub(super) fn check_address(addr: &Ipv6Addr) -> Result<(), String> {
    if addr.is_unspecified() || addr.is_multicast() {
        return Err(format!("{addr} is not a unicast address"));
    }
    if addr.to_ipv4_mapped().is_some() {
        return Err(format!("{addr} is an IPv4-mapped address: the stack is IPv6-only"));
    }
    Ok(())
}

/// `user@example.org` becomes `user.example.org.`; a DNS name is taken as is.
pub(super) fn mailbox_name(mail: &str) -> Result<Name, DnsError> {
    let lower = mail.to_ascii_lowercase();
    let body = match lower.split_once('@') {
        Some((user, _)) if user.contains('.') => {
            return Err(DnsError::Config(format!(
                "admin_email {mail:?}: the part before '@' must not contain dots"
            )))
        }
        Some((user, domain)) => format!("{user}.{}", domain.trim_end_matches('.')),
        None => lower.trim_end_matches('.').to_string(),
    };
    build_name(mail, &body).map_err(|e| DnsError::Config(format!("admin_email: {e}")))
}
