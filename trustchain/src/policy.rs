//! Issuance policy: what every member checks, on its own, before it issues
//! or co-signs. The issuing member and each co-signer run the same code on
//! the same request, so no member has to trust another's judgement.

use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use stoq::crypto::{Algorithm, PublicKey};
use stoq::pki::{CertKind, CertificateParams};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, SubjectAltName};
use x509_cert::TbsCertificate;

use crate::bundle::{verify_issued_by, Member, TrustBundle};
use crate::error::Refusal;
use crate::request::{Authorization, EnrollmentRequest};
use crate::revocation::issuer_of;
use crate::time::to_ms;
use crate::trust::TrustStore;

/// Issuance policy (the same on every member of a CA).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Certificate lifetime when the request asks for none, seconds.
    pub default_lifetime_secs: u64,
    /// Longest lifetime granted, seconds.
    pub max_lifetime_secs: u64,
    /// Tolerated clock difference between members, seconds.
    pub clock_skew_secs: u64,
    /// Whether the claimed address must be the one the request came from
    /// (off only where a relay stands between node and CA).
    pub require_source_address: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_lifetime_secs: 24 * 3600,
            max_lifetime_secs: 7 * 24 * 3600,
            clock_skew_secs: 60,
            require_source_address: true,
        }
    }
}

/// A request that passed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// Names for the certificate: the node-id name first, then the requested
    /// names (deduplicated, lowercase).
    pub names: Vec<String>,
    /// Lifetime granted.
    pub lifetime: Duration,
    /// The token spent, if any.
    pub token_id: Option<[u8; 16]>,
}

/// The name every certificate carries for its key:
/// `<first 16 bytes of the node id, hex>.id.<zone>`.
pub fn node_id_name(key: &PublicKey, zone_suffix: &str) -> String {
    format!("{}.id.{zone_suffix}", stoq::crypto::hex(&key.node_id().0[..16]))
}

fn check_name(bundle: &TrustBundle, name: &str) -> Result<String, Refusal> {
    let lower = name.to_ascii_lowercase();
    if rustls_pki_types::DnsName::try_from(lower.as_str()).is_err() || lower.contains('*') {
        return Err(Refusal::NameNotAllowed(format!("{name:?} is not a DNS name")));
    }
    let zone = bundle.zone_suffix();
    if !lower.ends_with(&format!(".{zone}")) {
        return Err(Refusal::NameNotAllowed(format!(
            "{name} is outside the zone {}",
            bundle.zone
        )));
    }
    if bundle.members.iter().any(|m| m.dns_name(&bundle.zone) == lower) || lower.ends_with(&format!(".id.{zone}")) {
        return Err(Refusal::NameNotAllowed(format!("{name} is reserved")));
    }
    Ok(lower)
}

/// Checks an address is a usable IPv6 address.
pub fn check_address(addr: Ipv6Addr) -> Result<(), Refusal> {
    if addr.to_ipv4_mapped().is_some() || addr.to_ipv4().is_some() && !addr.is_loopback() {
        return Err(Refusal::Ipv4Address(addr.to_string()));
    }
    if addr.is_unspecified() || addr.is_multicast() {
        return Err(Refusal::Malformed(format!("{addr} is not a unicast address")));
    }
    Ok(())
}

impl Policy {
    /// Checks a request against the policy, the bundle and (for renewals)
    /// the verifier state. `observed` is where it came from when known
    /// (the issuing member); co-signers pass `None`. Token use is not
    /// checked here (the caller owns that state).
    pub fn approve(
        &self,
        bundle: &TrustBundle,
        trust: &TrustStore,
        req: &EnrollmentRequest,
        observed: Option<Ipv6Addr>,
        now: SystemTime,
    ) -> Result<Approved, Refusal> {
        let body = &req.body;
        if body.bundle_id != bundle.id() {
            return Err(Refusal::Malformed("request for another CA".into()));
        }
        if body.subject.algorithm() != Algorithm::FnDsa1024 {
            return Err(Refusal::Malformed("the subject key must be FN-DSA-1024".into()));
        }
        body.subject
            .verify(&body.pop_bytes(), &req.proof_of_possession)
            .map_err(|_| Refusal::ProofOfPossession)?;
        check_address(body.address)?;
        if let (true, Some(seen)) = (self.require_source_address, observed) {
            if seen != body.address {
                return Err(Refusal::AddressMismatch {
                    claimed: body.address.to_string(),
                    observed: seen.to_string(),
                });
            }
        }
        let mut names = vec![node_id_name(&body.subject, bundle.zone_suffix())];
        for n in &body.names {
            let n = check_name(bundle, n)?;
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let requested = match body.lifetime_secs {
            0 => self.default_lifetime_secs,
            s => u64::from(s),
        };
        let mut max = self.max_lifetime_secs;
        let now_ms = to_ms(now);
        let token_id = match &req.auth {
            Authorization::Token(token) => {
                token.verify(bundle, now_ms)?;
                if let Some(n) = names[1..].iter().find(|n| !token.allows(n)) {
                    return Err(Refusal::NameNotAllowed(format!("{n} is not allowed by the token")));
                }
                if token.body.max_lifetime_secs != 0 {
                    max = max.min(u64::from(token.body.max_lifetime_secs));
                }
                Some(token.body.id)
            }
            Authorization::Renewal { certificate, signature } => {
                let issuer = issuer_of(bundle, certificate)
                    .and_then(|i| bundle.member(i))
                    .ok_or_else(|| Refusal::Renewal("the certificate was not issued by this CA".into()))?;
                verify_issued_by(certificate, issuer.key())
                    .map_err(|_| Refusal::Renewal("the certificate's signature does not verify".into()))?;
                if now > certificate.not_after() || now < certificate.not_before() {
                    return Err(Refusal::Renewal(
                        "the certificate is not valid now; enroll again with a token".into(),
                    ));
                }
                trust.verify_certificate(certificate).map_err(Refusal::Renewal)?;
                certificate
                    .public_key()
                    .verify(&body.renewal_bytes(), signature)
                    .map_err(|_| Refusal::Renewal("not signed by the certificate's key".into()))?;
                let held = certificate.dns_names();
                if let Some(n) = names[1..].iter().find(|n| !held.contains(n)) {
                    return Err(Refusal::NameNotAllowed(format!(
                        "{n} is not in the certificate being renewed; new names need a token"
                    )));
                }
                None
            }
        };
        if requested > max {
            return Err(Refusal::Lifetime {
                requested_secs: requested,
                max_secs: max,
            });
        }
        Ok(Approved {
            names,
            lifetime: Duration::from_secs(requested),
            token_id,
        })
    }

    /// The certificate parameters the issuing member uses.
    pub fn params(&self, approved: &Approved, serial: [u8; 16], now: SystemTime) -> CertificateParams {
        let skew = Duration::from_secs(self.clock_skew_secs);
        CertificateParams {
            kind: CertKind::Leaf,
            subject: format!("CN={}", approved.names[0]),
            dns_names: approved.names.clone(),
            not_before: now - skew,
            not_after: now + approved.lifetime,
            serial: Some(serial.to_vec()),
            extra_extensions: Vec::new(),
        }
    }

    /// Co-signer side: checks the issuer's precertificate body is what the
    /// approved request allows: the subject key, exactly the names, an end
    /// entity, issued by `issuer`, a validity within the lifetime granted
    /// and around `now`.
    pub fn check_precertificate(
        &self,
        precert_tbs: &[u8],
        req: &EnrollmentRequest,
        approved: &Approved,
        issuer: &Member,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        let bad = |m: &str| Refusal::Malformed(format!("precertificate: {m}"));
        let tbs = TbsCertificate::from_der(precert_tbs).map_err(|e| bad(&e.to_string()))?;
        if tbs.issuer() != issuer.certificate.x509().tbs_certificate().subject() {
            return Err(bad("names another issuer"));
        }
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad(&e.to_string()))?;
        let key = PublicKey::from_spki_der(&spki).map_err(|e| bad(&e.to_string()))?;
        if key != req.body.subject {
            return Err(bad("certifies another key"));
        }
        let names: Vec<String> = match tbs.get_extension::<SubjectAltName>() {
            Ok(Some((_, san))) => san
                .0
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DnsName(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            _ => return Err(bad("subjectAltName missing or malformed")),
        };
        if names != approved.names {
            return Err(bad("names differ from the request"));
        }
        match tbs.get_extension::<BasicConstraints>() {
            Ok(Some((_, bc))) if !bc.ca => {}
            _ => return Err(bad("must be an end-entity certificate")),
        }
        let allowed_ext = [
            const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
            const_oid::db::rfc5280::ID_CE_KEY_USAGE,
            const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
            const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
            const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
        ];
        if tbs
            .extensions()
            .map(|e| e.as_slice())
            .unwrap_or(&[])
            .iter()
            .any(|e| !allowed_ext.contains(&e.extn_id))
        {
            return Err(bad("carries an extension the policy does not allow"));
        }
        let not_before = tbs.validity().not_before.to_system_time();
        let not_after = tbs.validity().not_after.to_system_time();
        let skew = Duration::from_secs(self.clock_skew_secs);
        if not_before > now + skew || not_before + 2 * skew < now {
            return Err(bad("notBefore is not around now (check the members' clocks)"));
        }
        if not_after > now + approved.lifetime + skew || not_after <= not_before {
            return Err(bad("validity exceeds the lifetime granted"));
        }
        Ok(())
    }
}
