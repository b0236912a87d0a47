//! Enrollment and renewal requests.
//!
//! A request names the subject key, the DNS names and the IPv6 address, the
//! services to publish in DNS, and the lifetime wanted; it is signed by the
//! subject key over a server nonce (proof of possession) and authorized by
//! an enrollment token or, for renewal, by the current certificate plus a
//! signature of its key.

use std::net::Ipv6Addr;
use stoq::crypto::{KeyPair, PublicKey, Signature};
use stoq::pki::Certificate;

use crate::error::WireError;
use crate::token::EnrollmentToken;
use crate::wire::{Reader, Writer};
use crate::Result;

/// Largest encoded request accepted.
pub const MAX_REQUEST_LEN: usize = 16 * 1024;
/// Most names in one request.
pub const MAX_NAMES: usize = 16;
/// Most services in one request.
pub const MAX_SERVICES: usize = 8;
/// Server nonce length.
pub const NONCE_LEN: usize = 40;

/// A service to publish as a DNS SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service and protocol labels (`_stoq._udp`).
    pub name: String,
    /// Port.
    pub port: u16,
}

/// Writes a service list (count, then label and port each): the one
/// encoding requests, zone records and the zone feed share.
pub(crate) fn write_services(w: &mut Writer, services: &[Service]) {
    w.u8(services.len() as u8);
    for s in services {
        w.str8(&s.name).u16(s.port);
    }
}

/// Reads what [`write_services`] wrote, at most [`MAX_SERVICES`].
pub(crate) fn read_services(r: &mut Reader<'_>) -> Result<Vec<Service>, WireError> {
    let n = r.count(MAX_SERVICES)?;
    let mut services = Vec::with_capacity(n);
    for _ in 0..n {
        services.push(Service {
            name: r.str8(63)?,
            port: r.u16()?,
        });
    }
    Ok(services)
}

/// What is requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBody {
    /// The CA asked.
    pub bundle_id: [u8; 32],
    /// The key to certify.
    pub subject: PublicKey,
    /// DNS names, inside the zone.
    pub names: Vec<String>,
    /// The subject's IPv6 address (published as AAAA).
    pub address: Ipv6Addr,
    /// Services to publish.
    pub services: Vec<Service>,
    /// Lifetime wanted, seconds (0: the policy default).
    pub lifetime_secs: u32,
    /// The server nonce from `tc.nonce`.
    pub nonce: [u8; NONCE_LEN],
}

/// Why the CA should issue.
#[derive(Debug, Clone, PartialEq)]
// Short-lived values moved once through a channel or codec: boxing the
// certificate would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Authorization {
    /// A single-use enrollment token.
    Token(EnrollmentToken),
    /// Renewal: the current certificate and its key's signature over the
    /// request.
    Renewal {
        /// The certificate being renewed.
        certificate: Certificate,
        /// Its key's signature over [`RequestBody::renewal_bytes`].
        signature: Signature,
    },
}

/// A signed request.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentRequest {
    /// What is asked.
    pub body: RequestBody,
    /// Why.
    pub auth: Authorization,
    /// The subject key's signature over [`RequestBody::pop_bytes`].
    pub proof_of_possession: Signature,
}

impl RequestBody {
    fn write(&self, w: &mut Writer) {
        w.fixed(&self.bundle_id).key(&self.subject);
        w.u8(self.names.len() as u8);
        for n in &self.names {
            w.str8(n);
        }
        w.fixed(&self.address.octets());
        write_services(w, &self.services);
        w.u32(self.lifetime_secs).fixed(&self.nonce);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let bundle_id = r.array()?;
        let subject = r.key()?;
        let n = r.count(MAX_NAMES)?;
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            names.push(r.str8(253)?);
        }
        let address = Ipv6Addr::from(r.array::<16>()?);
        let services = read_services(r)?;
        Ok(RequestBody {
            bundle_id,
            subject,
            names,
            address,
            services,
            lifetime_secs: r.u32()?,
            nonce: r.array()?,
        })
    }

    /// What the subject key signs (proof of possession).
    pub fn pop_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_domain(b"trustchain/enroll/v1");
        self.write(&mut w);
        w.finish()
    }

    /// What the current certificate's key signs to authorize a renewal.
    pub fn renewal_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_domain(b"trustchain/renew/v1");
        self.write(&mut w);
        w.finish()
    }
}

impl EnrollmentRequest {
    /// Signs a token-authorized request with the subject key.
    pub fn with_token(body: RequestBody, token: EnrollmentToken, subject: &KeyPair) -> Result<Self> {
        let proof_of_possession = subject.sign(&body.pop_bytes())?;
        Ok(EnrollmentRequest {
            body,
            auth: Authorization::Token(token),
            proof_of_possession,
        })
    }

    /// Signs a renewal with the new subject key and the current key.
    pub fn renewal(body: RequestBody, current: Certificate, current_key: &KeyPair, subject: &KeyPair) -> Result<Self> {
        let signature = current_key.sign(&body.renewal_bytes())?;
        let proof_of_possession = subject.sign(&body.pop_bytes())?;
        Ok(EnrollmentRequest {
            body,
            auth: Authorization::Renewal {
                certificate: current,
                signature,
            },
            proof_of_possession,
        })
    }

    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1);
        self.body.write(&mut w);
        match &self.auth {
            Authorization::Token(t) => {
                w.u8(1).bytes16(&t.encode());
            }
            Authorization::Renewal { certificate, signature } => {
                w.u8(2).bytes16(certificate.der()).sig(signature);
            }
        }
        w.sig(&self.proof_of_possession);
        w.finish()
    }

    /// Parses the binary form, refusing anything oversized or malformed.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let err = |reason: String| WireError {
            what: "enrollment request",
            reason,
        };
        if buf.len() > MAX_REQUEST_LEN {
            return Err(err(format!(
                "{} bytes exceed the limit of {MAX_REQUEST_LEN}",
                buf.len()
            )));
        }
        let mut r = Reader::new(buf, "enrollment request");
        if r.u8()? != 1 {
            return Err(err("unknown version".into()));
        }
        let body = RequestBody::read(&mut r)?;
        let auth = match r.u8()? {
            1 => Authorization::Token(EnrollmentToken::decode(r.bytes16(8192)?)?),
            2 => {
                let der = r.bytes16(8192)?;
                let certificate = Certificate::from_der(der).map_err(|e| err(format!("certificate: {e}")))?;
                Authorization::Renewal {
                    certificate,
                    signature: r.sig()?,
                }
            }
            other => return Err(err(format!("unknown authorization type {other}"))),
        };
        let proof_of_possession = r.sig()?;
        r.finish()?;
        Ok(EnrollmentRequest {
            body,
            auth,
            proof_of_possession,
        })
    }
}
