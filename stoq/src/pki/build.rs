//! Certificate issuance with the `x509-cert` builder and a stack signer.

use const_oid::{db::rfc5280, AssociatedOid, ObjectIdentifier};
use der::asn1::{BitString, Ia5String, OctetString};
use der::Encode;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use std::str::FromStr;
use std::time::SystemTime;
use x509_cert::builder::{profile::BuilderProfile, Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::{
    name::GeneralName, AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::{Certificate, CertificateError};
use crate::crypto::{sha3_256, KeyPair, PublicKey};

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// A self-signed trust anchor.
    Root,
    /// A CA certificate below the root that may only issue end entities.
    Intermediate,
    /// An end-entity (node) certificate, valid for both TLS server and
    /// client authentication: every STOQ connection is mutual.
    Leaf,
}

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub struct CertificateParams {
    /// Root, intermediate or leaf.
    pub kind: CertKind,
    /// Subject distinguished name, RFC 4514 form (`CN=node-1,O=HyperMesh`).
    pub subject: String,
    /// DNS names for the subjectAltName extension (what webpki matches).
    pub dns_names: Vec<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Serial number bytes; random 16 bytes when `None`.
    pub serial: Option<Vec<u8>>,
    /// Further extensions (TrustChain's co-signatures and log promise).
    pub extra_extensions: Vec<Extension>,
}

impl CertificateParams {
    /// Parameters valid from now (minus a minute of clock skew) for
    /// `lifetime`.
    pub fn new(kind: CertKind, subject: impl Into<String>, lifetime: std::time::Duration) -> Self {
        let now = SystemTime::now();
        CertificateParams {
            kind,
            subject: subject.into(),
            dns_names: Vec::new(),
            not_before: now - std::time::Duration::from_secs(60),
            not_after: now + lifetime,
            serial: None,
            extra_extensions: Vec::new(),
        }
    }

    /// Adds DNS names.
    pub fn with_dns_names<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.dns_names.extend(names.into_iter().map(Into::into));
        self
    }
}

/// The signing side of issuance: a key and the name it signs as.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: KeyPair,
    name: Name,
}

impl Issuer {
    /// An issuer backed by its CA certificate, refusing a key that does not
    /// match the certificate.
    pub fn from_certificate(cert: &Certificate, key: KeyPair) -> Result<Self, CertificateError> {
        if cert.public_key() != key.public_key() {
            return Err(CertificateError::Issue(
                "issuer key does not match the issuer certificate".into(),
            ));
        }
        if !cert.is_ca() {
            return Err(CertificateError::Usage("issuer certificate is not a CA".into()));
        }
        Ok(Issuer {
            key,
            name: cert.x509().tbs_certificate().subject().clone(),
        })
    }

    /// The issuer for a self-signed root with this subject.
    pub fn self_signed(key: KeyPair, subject: &str) -> Result<Self, CertificateError> {
        Ok(Issuer {
            key,
            name: Name::from_str(subject)?,
        })
    }

    /// The issuing key.
    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// The issuer's distinguished name.
    pub fn name(&self) -> &Name {
        &self.name
    }
}

/// Issues a certificate for `subject_key` signed by `issuer`.
pub fn issue(
    params: &CertificateParams,
    subject_key: &PublicKey,
    issuer: &Issuer,
) -> Result<Certificate, CertificateError> {
    let issue_err = |e: x509_cert::builder::Error| CertificateError::Issue(e.to_string());
    let mut builder = builder_for(params, subject_key, issuer)?;
    let signer = CertSigner(&issuer.key);
    let tbs = builder.finalize(&signer).map_err(issue_err)?;
    let sig = issuer
        .key
        .sign(&tbs)
        .map_err(|e| CertificateError::Issue(e.to_string()))?;
    let cert = builder
        .assemble(BitString::from_bytes(sig.as_bytes())?, &signer)
        .map_err(issue_err)?;
    Certificate::from_der(&cert.to_der()?)
}

/// The builder for `params`, after checking names and validity.
pub(super) fn builder_for(
    params: &CertificateParams,
    subject_key: &PublicKey,
    issuer: &Issuer,
) -> Result<CertificateBuilder<StackProfile>, CertificateError> {
    let issue_err = |e: x509_cert::builder::Error| CertificateError::Issue(e.to_string());
    for name in &params.dns_names {
        rustls_pki_types::DnsName::try_from(name.as_str())
            .map_err(|_| CertificateError::Issue(format!("{name:?} is not a valid DNS name")))?;
    }
    if params.not_after <= params.not_before {
        return Err(CertificateError::Issue("notAfter must be later than notBefore".into()));
    }
    let subject = Name::from_str(&params.subject)?;
    if params.kind == CertKind::Root && subject != issuer.name {
        return Err(CertificateError::Issue("a root's subject must equal its issuer".into()));
    }
    let profile = StackProfile {
        subject,
        issuer: issuer.name.clone(),
        kind: params.kind,
        dns_names: params.dns_names.clone(),
    };
    let validity = Validity::new(time(params.not_before)?, time(params.not_after)?);
    let spki: SubjectPublicKeyInfoOwned = der::Decode::from_der(&subject_key.to_spki_der())?;
    let mut builder =
        CertificateBuilder::new(profile, serial(params.serial.as_deref())?, validity, spki).map_err(issue_err)?;
    for ext in &params.extra_extensions {
        builder
            .add_extension(ext.clone())
            .map_err(|e| CertificateError::Issue(e.to_string()))?;
    }
    Ok(builder)
}

fn time(t: SystemTime) -> Result<Time, CertificateError> {
    Time::try_from(t).map_err(|e| CertificateError::Issue(format!("time out of range: {e}")))
}

fn serial(bytes: Option<&[u8]>) -> Result<SerialNumber, CertificateError> {
    let bytes = match bytes {
        Some(b) => b.to_vec(),
        None => {
            let mut b = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
            // Positive and without a leading zero byte (RFC 5280 4.1.2.2).
            b[0] = (b[0] & 0x7f) | 0x01;
            b.to_vec()
        }
    };
    SerialNumber::new(&bytes).map_err(|e| CertificateError::Issue(format!("serial number: {e}")))
}

/// Adapts a [`KeyPair`] to what the builder asks of a signer (the algorithm
/// identifier and the public key); the signature itself is made by
/// [`KeyPair::sign`] over the bytes `finalize` returns.
pub(super) struct CertSigner<'a>(pub(super) &'a KeyPair);

#[derive(Clone)]
pub(super) struct SpkiKey(PublicKey);

impl spki::EncodePublicKey for SpkiKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.to_spki_der())?)
    }
}

impl signature::Keypair for CertSigner<'_> {
    type VerifyingKey = SpkiKey;
    fn verifying_key(&self) -> SpkiKey {
        SpkiKey(self.0.public_key().clone())
    }
}

impl spki::DynSignatureAlgorithmIdentifier for CertSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: self.0.algorithm().oid(),
            parameters: None,
        })
    }
}

/// The stack's certificate profile: what each [`CertKind`] carries.
pub(super) struct StackProfile {
    subject: Name,
    issuer: Name,
    kind: CertKind,
    dns_names: Vec<String>,
}

fn extension<T: Encode>(oid: ObjectIdentifier, critical: bool, value: &T) -> x509_cert::builder::Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn key_id(spk: &SubjectPublicKeyInfoRef<'_>) -> x509_cert::builder::Result<OctetString> {
    // RFC 7093 method: a truncated hash of the subjectPublicKey bits.
    Ok(OctetString::new(&sha3_256(spk.subject_public_key.raw_bytes())[..20])?)
}

impl BuilderProfile for StackProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut exts = Vec::new();
        let (ca, path_len, usage) = match self.kind {
            CertKind::Root => (true, None, KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            CertKind::Intermediate => (true, Some(0), KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            CertKind::Leaf => (false, None, KeyUsages::DigitalSignature.into()),
        };
        exts.push(extension(
            BasicConstraints::OID,
            true,
            &BasicConstraints {
                ca,
                path_len_constraint: path_len,
            },
        )?);
        exts.push(extension(KeyUsage::OID, true, &KeyUsage(usage))?);
        if self.kind == CertKind::Leaf {
            let eku = ExtendedKeyUsage(vec![rfc5280::ID_KP_SERVER_AUTH, rfc5280::ID_KP_CLIENT_AUTH]);
            exts.push(extension(ExtendedKeyUsage::OID, false, &eku)?);
        }
        if !self.dns_names.is_empty() {
            let mut names = Vec::with_capacity(self.dns_names.len());
            for n in &self.dns_names {
                names.push(GeneralName::DnsName(Ia5String::new(n)?));
            }
            // RFC 5280: critical when the subject is empty.
            exts.push(extension(
                SubjectAltName::OID,
                self.subject.is_empty(),
                &SubjectAltName(names),
            )?);
        }
        exts.push(extension(
            SubjectKeyIdentifier::OID,
            false,
            &SubjectKeyIdentifier(key_id(&spk)?),
        )?);
        if self.kind != CertKind::Root {
            let aki = AuthorityKeyIdentifier {
                key_identifier: Some(key_id(&issuer_spk)?),
                ..Default::default()
            };
            exts.push(extension(AuthorityKeyIdentifier::OID, false, &aki)?);
        }
        Ok(exts)
    }
}
