//! Working on the to-be-signed part of a certificate: building it without
//! signing, adding or removing one extension, and signing it later.
//!
//! TrustChain needs this for RFC 6962-style precertificates: members agree
//! on (and log) the certificate body without the extension that carries the
//! log proof, then the issuer adds that extension and signs. Removing the
//! extension from the final body must give back the logged bytes exactly,
//! which DER's canonical encoding guarantees.

use const_oid::ObjectIdentifier;
use der::asn1::BitString;
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::Version;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use super::build::{builder_for, CertSigner};
use super::{Certificate, CertificateError, CertificateParams, Issuer};
use crate::crypto::PublicKey;

/// An owned, editable mirror of RFC 5280's TBSCertificate (x509-cert keeps
/// its fields private); same field types and tagging, so the same DER.
#[derive(Clone, Debug, Sequence)]
struct TbsFields {
    #[asn1(context_specific = "0", default = "Default::default")]
    version: Version,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_unique_id: Option<BitString>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_unique_id: Option<BitString>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

#[derive(Sequence)]
struct CertificateFields {
    tbs_certificate: TbsFields,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// Builds the DER of the to-be-signed certificate `issue` would sign,
/// without signing it.
pub fn tbs_certificate(
    params: &CertificateParams,
    subject_key: &PublicKey,
    issuer: &Issuer,
) -> Result<Vec<u8>, CertificateError> {
    let mut builder = builder_for(params, subject_key, issuer)?;
    let signer = CertSigner(issuer.key());
    x509_cert::builder::Builder::finalize(&mut builder, &signer).map_err(|e| CertificateError::Issue(e.to_string()))
}

/// Appends `extension` to a to-be-signed certificate, refusing a duplicate.
pub fn tbs_add_extension(tbs_der: &[u8], extension: Extension) -> Result<Vec<u8>, CertificateError> {
    let mut tbs = TbsFields::from_der(tbs_der)?;
    let exts = tbs.extensions.get_or_insert_with(Vec::new);
    if exts.iter().any(|e| e.extn_id == extension.extn_id) {
        return Err(CertificateError::Issue(format!(
            "extension {} is already present",
            extension.extn_id
        )));
    }
    exts.push(extension);
    Ok(tbs.to_der()?)
}

/// Splits a to-be-signed certificate into the body without extension `oid`
/// and that extension (if present).
pub fn tbs_remove_extension(
    tbs_der: &[u8],
    oid: &ObjectIdentifier,
) -> Result<(Vec<u8>, Option<Extension>), CertificateError> {
    let mut tbs = TbsFields::from_der(tbs_der)?;
    let mut removed = None;
    if let Some(exts) = tbs.extensions.as_mut() {
        if let Some(pos) = exts.iter().position(|e| &e.extn_id == oid) {
            removed = Some(exts.remove(pos));
        }
        if exts.is_empty() {
            tbs.extensions = None;
        }
    }
    Ok((tbs.to_der()?, removed))
}

/// Signs a to-be-signed certificate with `issuer`, after checking it names
/// that issuer and its signature algorithm.
pub fn sign_tbs(tbs_der: &[u8], issuer: &Issuer) -> Result<Certificate, CertificateError> {
    Certificate::from_der(&sign_tbs_der(tbs_der, issuer)?)
}

/// [`sign_tbs`] for a body whose subject key the caller holds decoded (a
/// CA signing a request's key): the key is not decoded again, and a body
/// for another key is refused.
pub fn sign_tbs_for(tbs_der: &[u8], issuer: &Issuer, subject: &PublicKey) -> Result<Certificate, CertificateError> {
    Certificate::from_der_with_key(&sign_tbs_der(tbs_der, issuer)?, subject)
}

/// Signs a body as `issuer`; the certificate's DER.
fn sign_tbs_der(tbs_der: &[u8], issuer: &Issuer) -> Result<Vec<u8>, CertificateError> {
    let tbs = TbsFields::from_der(tbs_der)?;
    if tbs.issuer != *issuer.name() {
        return Err(CertificateError::Issue(
            "the certificate body names another issuer".into(),
        ));
    }
    if tbs.signature.oid != issuer.key().algorithm().oid() || tbs.signature.parameters.is_some() {
        return Err(CertificateError::Issue(
            "the certificate body names another signature algorithm".into(),
        ));
    }
    let sig = issuer
        .key()
        .sign(tbs_der)
        .map_err(|e| CertificateError::Issue(e.to_string()))?;
    let cert = CertificateFields {
        signature_algorithm: tbs.signature.clone(),
        tbs_certificate: tbs,
        signature: BitString::from_bytes(sig.as_bytes())?,
    };
    Ok(cert.to_der()?)
}

/// The DER of a certificate's to-be-signed part.
pub fn tbs_of(cert: &Certificate) -> Result<Vec<u8>, CertificateError> {
    Ok(cert.x509().tbs_certificate().to_der()?)
}
