//! The certificate's inclusion proof extension and the precertificate it is
//! computed over.
//!
//! Like RFC 6962 precertificates, the log entry is the certificate body
//! *without* this extension; the issuer then adds the extension (the log,
//! the checkpoint's tree size, the leaf index and the Merkle path from the
//! entry to the checkpoint's batch root) and signs. A verifier strips the
//! extension, hashes the body as a log leaf and walks the path to a batch
//! root that k members co-signed.
//!
//! Size: the extension is 30 bytes plus 32 per level of the batch tree, so
//! a certificate stays below the QUIC anti-amplification budget (see
//! `trustchain/DESIGN.md`), where k embedded 1,280-byte co-signatures and a
//! signed timestamp could not.

use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use x509_cert::ext::Extension;

use stoq::crypto::merkle_leaf_hash;
use stoq::pki::{tbs_of, tbs_remove_extension, Certificate};

use crate::error::WireError;
use crate::log::{Hash, MAX_PROOF_LEN};
use crate::wire::{Reader, Writer};
use crate::Result;

/// OID of the inclusion proof extension (under the stack's private arc).
pub const INCLUSION_PROOF_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.59999.1.1");

/// Log entry types (first byte of every entry).
pub mod entry_type {
    /// A precertificate body (DER TBSCertificate without the proof).
    pub const PRECERTIFICATE: u8 = 1;
    /// A revocation statement.
    pub const REVOCATION: u8 = 2;
}

/// Where a certificate sits in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The log (member index).
    pub log_id: u16,
    /// Tree size of the checkpoint whose batch holds the entry.
    pub tree_size: u64,
    /// Index of the entry in the log.
    pub leaf_index: u64,
    /// Path from the entry to the checkpoint's batch root.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// Encodes the extension value.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1).u16(self.log_id).u64(self.tree_size).u64(self.leaf_index);
        w.u8(self.path.len() as u8);
        for h in &self.path {
            w.fixed(h);
        }
        w.finish()
    }

    /// Decodes the extension value.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, "inclusion proof extension");
        if r.u8()? != 1 {
            return Err(WireError {
                what: "inclusion proof extension",
                reason: "unknown version".into(),
            });
        }
        let log_id = r.u16()?;
        let tree_size = r.u64()?;
        let leaf_index = r.u64()?;
        let n = r.count(MAX_PROOF_LEN)?;
        let mut path = Vec::with_capacity(n);
        for _ in 0..n {
            path.push(r.array()?);
        }
        r.finish()?;
        if leaf_index >= tree_size {
            return Err(WireError {
                what: "inclusion proof extension",
                reason: "leaf index beyond the tree size".into(),
            });
        }
        Ok(InclusionProof {
            log_id,
            tree_size,
            leaf_index,
            path,
        })
    }

    /// The X.509 extension (non-critical: software that does not know it
    /// may still parse the certificate).
    pub fn to_extension(&self) -> Result<Extension> {
        Ok(Extension {
            extn_id: INCLUSION_PROOF_OID,
            critical: false,
            extn_value: OctetString::new(self.encode()).map_err(stoq::pki::CertificateError::from)?,
        })
    }
}

/// The log entry for a precertificate body.
pub fn precertificate_entry(precert_tbs: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(precert_tbs.len() + 1);
    e.push(entry_type::PRECERTIFICATE);
    e.extend_from_slice(precert_tbs);
    e
}

/// Splits an issued certificate into its inclusion proof and the leaf hash
/// of the precertificate entry it proves.
pub fn precertificate_of(cert: &Certificate) -> Result<Option<(InclusionProof, Hash)>> {
    let (body, ext) = tbs_remove_extension(&tbs_of(cert)?, &INCLUSION_PROOF_OID)?;
    let Some(ext) = ext else {
        return Ok(None);
    };
    let proof = InclusionProof::decode(ext.extn_value.as_bytes())?;
    Ok(Some((proof, merkle_leaf_hash(&precertificate_entry(&body)))))
}
