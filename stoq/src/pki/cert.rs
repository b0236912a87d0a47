//! A parsed certificate with the accessors the transport needs.

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use rustls_pki_types::CertificateDer;
use std::time::SystemTime;
use x509_cert::ext::pkix::{name::GeneralName, BasicConstraints, SubjectAltName};

use super::CertificateError;
use crate::crypto::{sha3_256, Algorithm, NodeId, PublicKey};

/// An X.509 certificate: its DER and the parsed structure.
#[derive(Clone)]
pub struct Certificate {
    der: CertificateDer<'static>,
    parsed: x509_cert::Certificate,
    public_key: PublicKey,
}

impl Certificate {
    /// Parses DER, refusing certificates whose key is not one of our
    /// algorithms.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let parsed = x509_cert::Certificate::from_der(der)?;
        let spki = parsed.tbs_certificate().subject_public_key_info().to_der()?;
        let public_key = PublicKey::from_spki_der(&spki).map_err(|e| CertificateError::Algorithm(e.to_string()))?;
        Ok(Certificate {
            der: CertificateDer::from(der.to_vec()),
            parsed,
            public_key,
        })
    }

    /// Parses DER whose subject key the caller already holds decoded (a
    /// certificate it just signed for that key): skips decoding the key
    /// again, and refuses a certificate for any other key.
    pub fn from_der_with_key(der: &[u8], subject: &PublicKey) -> Result<Self, CertificateError> {
        let parsed = x509_cert::Certificate::from_der(der)?;
        let spki = parsed.tbs_certificate().subject_public_key_info().to_der()?;
        if spki != subject.to_spki_der() {
            return Err(CertificateError::Malformed(
                "the certificate is for another subject key".into(),
            ));
        }
        Ok(Certificate {
            der: CertificateDer::from(der.to_vec()),
            parsed,
            public_key: subject.clone(),
        })
    }

    /// Parses one PEM `CERTIFICATE` block.
    pub fn from_pem(pem: &str) -> Result<Self, CertificateError> {
        let (label, der) =
            der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        if label != "CERTIFICATE" {
            return Err(CertificateError::Malformed(format!(
                "expected a CERTIFICATE PEM block, found {label}"
            )));
        }
        Self::from_der(&der)
    }

    /// Parses every `CERTIFICATE` block of a PEM bundle, in order.
    pub fn all_from_pem(pem: &str) -> Result<Vec<Self>, CertificateError> {
        const END: &str = "-----END CERTIFICATE-----";
        let mut out = Vec::new();
        for block in pem.split_inclusive(END).filter(|b| b.contains("-----BEGIN")) {
            out.push(Self::from_pem(block)?);
        }
        if out.is_empty() {
            return Err(CertificateError::Malformed("no CERTIFICATE block in PEM".into()));
        }
        Ok(out)
    }

    /// PEM form.
    pub fn to_pem(&self) -> String {
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &self.der).unwrap_or_default()
    }

    /// The DER bytes, as rustls takes them.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The parsed structure.
    pub fn x509(&self) -> &x509_cert::Certificate {
        &self.parsed
    }

    /// The subject public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The subject's node id (SHA3-256 of the SubjectPublicKeyInfo).
    pub fn node_id(&self) -> NodeId {
        self.public_key.node_id()
    }

    /// The algorithm of the issuer's signature on this certificate.
    pub fn signature_algorithm(&self) -> Result<Algorithm, CertificateError> {
        Algorithm::from_oid(&self.parsed.signature_algorithm().oid)
            .map_err(|e| CertificateError::Algorithm(e.to_string()))
    }

    /// SHA3-256 of the DER: the fingerprint published in DNS and logs.
    pub fn fingerprint(&self) -> [u8; 32] {
        sha3_256(&self.der)
    }

    /// The serial number's bytes.
    pub fn serial(&self) -> &[u8] {
        self.parsed.tbs_certificate().serial_number().as_bytes()
    }

    /// Subject distinguished name, RFC 4514 string form.
    pub fn subject(&self) -> String {
        self.parsed.tbs_certificate().subject().to_string()
    }

    /// Issuer distinguished name, RFC 4514 string form.
    pub fn issuer(&self) -> String {
        self.parsed.tbs_certificate().issuer().to_string()
    }

    /// notBefore.
    pub fn not_before(&self) -> SystemTime {
        self.parsed.tbs_certificate().validity().not_before.to_system_time()
    }

    /// notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.parsed.tbs_certificate().validity().not_after.to_system_time()
    }

    /// The DNS names of the subjectAltName extension.
    pub fn dns_names(&self) -> Vec<String> {
        let Ok(Some(san)) = self.extension::<SubjectAltName>() else {
            return Vec::new();
        };
        san.0
            .iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(s) => Some(s.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Whether basicConstraints marks this a CA certificate.
    pub fn is_ca(&self) -> bool {
        matches!(self.extension::<BasicConstraints>(), Ok(Some(bc)) if bc.ca)
    }

    /// The raw value of the extension with `oid`, if present.
    pub fn extension_value(&self, oid: &ObjectIdentifier) -> Option<&[u8]> {
        self.parsed
            .tbs_certificate()
            .extensions()?
            .iter()
            .find(|e| &e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// Decodes a known extension type, if present.
    pub fn extension<T>(&self) -> Result<Option<T>, CertificateError>
    where
        T: for<'a> Decode<'a> + const_oid::AssociatedOid,
    {
        match self.extension_value(&T::OID) {
            None => Ok(None),
            Some(v) => T::from_der(v)
                .map(Some)
                .map_err(|e| CertificateError::Malformed(format!("extension {}: {e}", T::OID))),
        }
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der() == other.der()
    }
}

impl Eq for Certificate {}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject())
            .field("node_id", &self.node_id())
            .field("names", &self.dns_names())
            .finish()
    }
}
