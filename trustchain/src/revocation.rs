//! Revocation: requests (by an admin or by the certificate's own key),
//! the statements logged, and the signed revocations verifiers apply.

use stoq::crypto::{KeyPair, PublicKey, Signature};
use stoq::pki::Certificate;

use crate::bundle::TrustBundle;
use crate::error::{Refusal, WireError};
use crate::inclusion::entry_type;
use crate::wire::{Reader, Writer};
use crate::Result;

/// Longest serial number accepted (RFC 5280 allows 20 octets).
pub const MAX_SERIAL_LEN: usize = 20;

/// Why a certificate was revoked (RFC 5280 reason codes).
pub mod reason {
    /// No reason given.
    pub const UNSPECIFIED: u8 = 0;
    /// The key was compromised.
    pub const KEY_COMPROMISE: u8 = 1;
    /// Replaced by a newer certificate.
    pub const SUPERSEDED: u8 = 4;
    /// The node left the mesh.
    pub const CESSATION_OF_OPERATION: u8 = 5;
}

/// What is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationStatement {
    /// The CA.
    pub bundle_id: [u8; 32],
    /// The certificate's serial number.
    pub serial: Vec<u8>,
    /// The member (log) that issued it.
    pub issuer_log: u16,
    /// The certificate's notAfter (ms): after it the entry can be dropped.
    pub not_after_ms: u64,
    /// RFC 5280 reason code.
    pub reason: u8,
    /// When it was requested (ms since the Unix epoch).
    pub revoked_at_ms: u64,
}

impl RevocationStatement {
    fn write(&self, w: &mut Writer) {
        w.fixed(&self.bundle_id)
            .bytes8(&self.serial)
            .u16(self.issuer_log)
            .u64(self.not_after_ms)
            .u8(self.reason)
            .u64(self.revoked_at_ms);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RevocationStatement {
            bundle_id: r.array()?,
            serial: r.bytes8(MAX_SERIAL_LEN)?.to_vec(),
            issuer_log: r.u16()?,
            not_after_ms: r.u64()?,
            reason: r.u8()?,
            revoked_at_ms: r.u64()?,
        })
    }

    /// The statement for revoking `cert`, issued by member `issuer_log`.
    pub fn for_certificate(bundle: &TrustBundle, cert: &Certificate, reason: u8, now_ms: u64) -> Result<Self> {
        let issuer_log = issuer_of(bundle, cert).ok_or_else(|| {
            crate::Error::Refused(Refusal::NotFound(
                "the certificate was not issued by a member of this CA".into(),
            ))
        })?;
        Ok(RevocationStatement {
            bundle_id: bundle.id(),
            serial: cert.serial().to_vec(),
            issuer_log,
            not_after_ms: crate::time::to_ms(cert.not_after()),
            reason,
            revoked_at_ms: now_ms,
        })
    }

    /// The log entry.
    pub fn log_entry(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(entry_type::REVOCATION);
        self.write(&mut w);
        w.finish()
    }

    fn request_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_domain(b"trustchain/revoke-request/v1");
        self.write(&mut w);
        w.finish()
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_domain(b"trustchain/revocation/v1");
        self.write(&mut w);
        w.finish()
    }
}

/// The member that issued `cert`, by issuer name.
pub fn issuer_of(bundle: &TrustBundle, cert: &Certificate) -> Option<u16> {
    let issuer = cert.x509().tbs_certificate().issuer();
    bundle
        .members
        .iter()
        .find(|m| m.certificate.x509().tbs_certificate().subject() == issuer)
        .map(|m| m.index)
}

/// Who asks for the revocation.
#[derive(Debug, Clone, PartialEq)]
// Short-lived values moved once through a channel or codec: boxing the
// certificate would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum RevocationAuth {
    /// An admin key of the bundle.
    Admin {
        /// The admin key.
        key: PublicKey,
        /// Its signature over the statement.
        signature: Signature,
    },
    /// The certificate's own key.
    Subject {
        /// The certificate revoked.
        certificate: Certificate,
        /// Its key's signature over the statement.
        signature: Signature,
    },
}

/// A revocation request.
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationRequest {
    /// What to revoke.
    pub statement: RevocationStatement,
    /// Who asks.
    pub auth: RevocationAuth,
}

impl RevocationRequest {
    /// An admin's request.
    pub fn by_admin(statement: RevocationStatement, admin: &KeyPair) -> Result<Self> {
        let signature = admin.sign(&statement.request_bytes())?;
        Ok(RevocationRequest {
            statement,
            auth: RevocationAuth::Admin {
                key: admin.public_key().clone(),
                signature,
            },
        })
    }

    /// The subject's own request.
    pub fn by_subject(statement: RevocationStatement, certificate: Certificate, key: &KeyPair) -> Result<Self> {
        let signature = key.sign(&statement.request_bytes())?;
        Ok(RevocationRequest {
            statement,
            auth: RevocationAuth::Subject { certificate, signature },
        })
    }

    /// Checks the requester may revoke this certificate.
    pub fn authorize(&self, bundle: &TrustBundle) -> Result<(), Refusal> {
        let st = &self.statement;
        if st.bundle_id != bundle.id() {
            return Err(Refusal::Unauthorized("revocation for another CA".into()));
        }
        if bundle.member(st.issuer_log).is_none() {
            return Err(Refusal::NotFound(format!("no member {}", st.issuer_log)));
        }
        let msg = st.request_bytes();
        match &self.auth {
            RevocationAuth::Admin { key, signature } => {
                if !bundle.is_admin(key) {
                    return Err(Refusal::Unauthorized("the key is not an admin key of this CA".into()));
                }
                key.verify(&msg, signature)
                    .map_err(|_| Refusal::Unauthorized("admin signature does not verify".into()))
            }
            RevocationAuth::Subject { certificate, signature } => {
                if certificate.serial() != st.serial.as_slice() || issuer_of(bundle, certificate) != Some(st.issuer_log)
                {
                    return Err(Refusal::Unauthorized(
                        "a subject may only revoke its own certificate".into(),
                    ));
                }
                certificate
                    .public_key()
                    .verify(&msg, signature)
                    .map_err(|_| Refusal::Unauthorized("subject signature does not verify".into()))
            }
        }
    }

    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1);
        self.statement.write(&mut w);
        match &self.auth {
            RevocationAuth::Admin { key, signature } => {
                w.u8(1).key(key).sig(signature);
            }
            RevocationAuth::Subject { certificate, signature } => {
                w.u8(2).bytes16(certificate.der()).sig(signature);
            }
        }
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "revocation request");
        if r.u8()? != 1 {
            return Err(WireError {
                what: "revocation request",
                reason: "unknown version".into(),
            });
        }
        let statement = RevocationStatement::read(&mut r)?;
        let auth = match r.u8()? {
            1 => RevocationAuth::Admin {
                key: r.key()?,
                signature: r.sig()?,
            },
            2 => {
                let der = r.bytes16(8192)?;
                RevocationAuth::Subject {
                    certificate: Certificate::from_der(der).map_err(|e| WireError {
                        what: "revocation request",
                        reason: format!("certificate: {e}"),
                    })?,
                    signature: r.sig()?,
                }
            }
            other => {
                return Err(WireError {
                    what: "revocation request",
                    reason: format!("unknown requester type {other}"),
                })
            }
        };
        r.finish()?;
        Ok(RevocationRequest { statement, auth })
    }
}

/// A logged revocation, signed by the member that logged it: what
/// verifiers receive by gossip and RPC. One member's signature suffices
/// because a revocation can only take trust away.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedRevocation {
    /// What is revoked.
    pub statement: RevocationStatement,
    /// The member that logged it.
    pub member: u16,
    /// Its signature.
    pub signature: Signature,
}

impl SignedRevocation {
    /// Signs `statement` as member `index`.
    pub fn sign(statement: RevocationStatement, index: u16, key: &KeyPair) -> Result<Self> {
        let signature = key.sign(&statement.signed_bytes())?;
        Ok(SignedRevocation {
            statement,
            member: index,
            signature,
        })
    }

    /// Checks the CA and the member signature.
    pub fn verify(&self, bundle: &TrustBundle) -> Result<(), Refusal> {
        if self.statement.bundle_id != bundle.id() {
            return Err(Refusal::Unauthorized("revocation for another CA".into()));
        }
        let m = bundle
            .member(self.member)
            .ok_or_else(|| Refusal::Unauthorized(format!("unknown member {}", self.member)))?;
        m.key()
            .verify(&self.statement.signed_bytes(), &self.signature)
            .map_err(|_| Refusal::Unauthorized("revocation signature does not verify".into()))
    }

    /// Binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1);
        self.statement.write(&mut w);
        w.u16(self.member).sig(&self.signature);
        w.finish()
    }

    /// Parses the binary form.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "signed revocation");
        if r.u8()? != 1 {
            return Err(WireError {
                what: "signed revocation",
                reason: "unknown version".into(),
            });
        }
        let statement = RevocationStatement::read(&mut r)?;
        let member = r.u16()?;
        let signature = r.sig()?;
        r.finish()?;
        Ok(SignedRevocation {
            statement,
            member,
            signature,
        })
    }
}
