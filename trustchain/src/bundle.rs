//! The trust bundle: what every verifier is configured with.
//!
//! A bundle names the root certificate, the n member CA certificates the
//! root signed (each member's key signs certificates, checkpoints of its own
//! log and co-signatures on other members' checkpoints), the threshold k,
//! the admin keys and the DNS zone. Its id (SHA3-256 of the canonical
//! encoding, member addresses excluded so members can move) is bound into
//! every signed statement, so nothing signed under one CA verifies under
//! another.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

use stoq::crypto::{sha3_256, PublicKey};
use stoq::pki::{tbs_of, Certificate, TrustAnchors};

use crate::wire::Writer;
use crate::{Error, Result};

/// Most members a CA may have (member sets are u32 bitmaps on the wire).
pub const MAX_MEMBERS: usize = 32;

/// One CA member.
#[derive(Debug, Clone)]
pub struct Member {
    /// Position in the bundle; also the id of the member's log.
    pub index: u16,
    /// A short name (`ca-0`).
    pub name: String,
    /// The member's CA certificate, issued by the root.
    pub certificate: Certificate,
    /// Where the member serves STOQ.
    pub address: SocketAddr,
}

impl Member {
    /// The member's key (CA, log and co-signing key).
    pub fn key(&self) -> &PublicKey {
        self.certificate.public_key()
    }

    /// The DNS name the member's own TLS certificate carries.
    pub fn dns_name(&self, zone: &str) -> String {
        format!("{}.{}", self.name, zone.trim_end_matches('.'))
    }
}

/// The trust bundle.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    /// The DNS zone names are issued in, with the trailing dot (`mesh.`).
    pub zone: String,
    /// Co-signatures needed: k of n, with k > n/2 so any two quorums share
    /// a member (what makes tokens single-use and forks impossible without
    /// a member signing twice).
    pub threshold: u16,
    /// The offline root that certified the members.
    pub root: Certificate,
    /// The members, by index.
    pub members: Vec<Member>,
    /// Keys allowed to create tokens and revoke any certificate.
    pub admins: Vec<PublicKey>,
    id: [u8; 32],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFile {
    zone: String,
    threshold: u16,
    root: String,
    #[serde(default)]
    admins: Vec<String>,
    members: Vec<MemberFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFile {
    index: u16,
    name: String,
    address: SocketAddr,
    certificate: String,
}

impl TrustBundle {
    /// Builds and validates a bundle.
    pub fn new(
        zone: &str,
        threshold: u16,
        root: Certificate,
        members: Vec<Member>,
        admins: Vec<PublicKey>,
    ) -> Result<Self> {
        let zone = normalize_zone(zone)?;
        let mut bundle = TrustBundle {
            zone,
            threshold,
            root,
            members,
            admins,
            id: [0; 32],
        };
        bundle.validate()?;
        bundle.id = bundle.compute_id();
        Ok(bundle)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Bundle(m));
        let n = self.members.len();
        if n == 0 || n > MAX_MEMBERS {
            return bad(format!("a CA needs 1 to {MAX_MEMBERS} members, this bundle has {n}"));
        }
        let k = usize::from(self.threshold);
        if k == 0 || k > n || 2 * k <= n {
            return bad(format!(
                "threshold {k} of {n} is not allowed: it must be more than half of the members and at most all of them"
            ));
        }
        if !self.root.is_ca() {
            return bad("the root certificate is not a CA certificate".into());
        }
        verify_issued_by(&self.root, self.root.public_key()).map_err(|e| Error::Bundle(format!("root: {e}")))?;
        for (i, m) in self.members.iter().enumerate() {
            if usize::from(m.index) != i {
                return bad(format!(
                    "member {} is listed at position {i}: indexes must be 0..n in order",
                    m.index
                ));
            }
            if m.name.is_empty() || m.name.len() > 63 || !m.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return bad(format!("member name {:?} must be a DNS label", m.name));
            }
            if !m.certificate.is_ca() {
                return bad(format!("member {} certificate is not a CA certificate", m.name));
            }
            verify_issued_by(&m.certificate, self.root.public_key())
                .map_err(|e| Error::Bundle(format!("member {} is not certified by the root: {e}", m.name)))?;
            if self.members[..i].iter().any(|o| o.key() == m.key() || o.name == m.name) {
                return bad(format!("member {} repeats the key or name of another member", m.name));
            }
            if !m.address.is_ipv6() {
                return bad(format!(
                    "member {} address {} is IPv4: the stack is IPv6-only",
                    m.name, m.address
                ));
            }
        }
        Ok(())
    }

    fn compute_id(&self) -> [u8; 32] {
        let mut w = Writer::with_domain(b"trustchain/bundle/v1");
        w.str8(&self.zone).u16(self.threshold).bytes32(self.root.der());
        w.u8(self.members.len() as u8);
        for m in &self.members {
            w.u16(m.index).str8(&m.name).bytes32(m.certificate.der());
        }
        w.u8(self.admins.len().min(255) as u8);
        for a in &self.admins {
            w.key(a);
        }
        sha3_256(w.as_slice())
    }

    /// The bundle id bound into every signed statement.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// k.
    pub fn threshold(&self) -> usize {
        usize::from(self.threshold)
    }

    /// A member by index.
    pub fn member(&self, index: u16) -> Option<&Member> {
        self.members.get(usize::from(index))
    }

    /// The member holding `key`, if any.
    pub fn member_by_key(&self, key: &PublicKey) -> Option<&Member> {
        self.members.iter().find(|m| m.key() == key)
    }

    /// Whether `key` is an admin key.
    pub fn is_admin(&self, key: &PublicKey) -> bool {
        self.admins.iter().any(|a| a == key)
    }

    /// The zone without its trailing dot, as names appear in certificates.
    pub fn zone_suffix(&self) -> &str {
        self.zone.trim_end_matches('.')
    }

    /// The STOQ trust anchors: the member CA certificates (leaves carry no
    /// intermediates, so the server's TLS flight stays small).
    pub fn trust_anchors(&self) -> Result<TrustAnchors> {
        Ok(TrustAnchors::new(self.members.iter().map(|m| m.certificate.clone()))?)
    }

    /// Parses the TOML form.
    pub fn from_toml(text: &str) -> Result<Self> {
        let f: BundleFile = toml::from_str(text).map_err(|e| Error::Bundle(format!("bundle file: {e}")))?;
        let root = Certificate::from_pem(&f.root)?;
        let members = f
            .members
            .into_iter()
            .map(|m| {
                Ok(Member {
                    index: m.index,
                    name: m.name,
                    address: m.address,
                    certificate: Certificate::from_pem(&m.certificate)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let admins = f
            .admins
            .iter()
            .map(|a| PublicKey::from_pem(a).map_err(|e| Error::Bundle(format!("admin key: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        TrustBundle::new(&f.zone, f.threshold, root, members, admins)
    }

    /// The TOML form.
    pub fn to_toml(&self) -> String {
        let f = BundleFile {
            zone: self.zone.clone(),
            threshold: self.threshold,
            root: self.root.to_pem(),
            admins: self.admins.iter().map(|a| a.to_pem()).collect(),
            members: self
                .members
                .iter()
                .map(|m| MemberFile {
                    index: m.index,
                    name: m.name.clone(),
                    address: m.address,
                    certificate: m.certificate.to_pem(),
                })
                .collect(),
        };
        toml::to_string(&f).unwrap_or_default()
    }

    /// Reads a bundle file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading trust bundle {}", path.display()),
            source,
        })?;
        TrustBundle::from_toml(&text)
    }
}

/// Normalizes a zone to lowercase with a trailing dot, refusing what is not
/// a DNS name.
pub fn normalize_zone(zone: &str) -> Result<String> {
    let z = zone.trim_end_matches('.').to_ascii_lowercase();
    if z.is_empty() || rustls_pki_types::DnsName::try_from(z.as_str()).is_err() {
        return Err(Error::Config(format!("zone {zone:?} is not a DNS name")));
    }
    Ok(format!("{z}."))
}

/// Checks that `cert` is signed by `issuer_key`.
pub fn verify_issued_by(cert: &Certificate, issuer_key: &PublicKey) -> Result<()> {
    let alg = cert.signature_algorithm()?;
    if alg != issuer_key.algorithm() {
        return Err(Error::Bundle(format!(
            "signed with {alg}, the issuer key is {}",
            issuer_key.algorithm()
        )));
    }
    let sig = cert
        .x509()
        .signature()
        .as_bytes()
        .ok_or_else(|| Error::Bundle("signature has unused bits".into()))?;
    issuer_key.verify_raw(&tbs_of(cert)?, sig)?;
    Ok(())
}
