//! Stable encodings: SubjectPublicKeyInfo and PKCS#8 DER/PEM, the compact
//! wire form, and key files written with mode 0600.

use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

use super::{Algorithm, CryptoError, KeyPair};

/// Version byte of the compact wire encoding of keys and signatures.
pub const ENCODING_VERSION: u8 = 1;

fn algorithm_identifier(alg: Algorithm) -> AlgorithmIdentifierOwned {
    // Parameters absent (not NULL): webpki compares the bytes exactly.
    AlgorithmIdentifierOwned {
        oid: alg.oid(),
        parameters: None,
    }
}

pub(super) fn spki_der(alg: Algorithm, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: algorithm_identifier(alg),
        subject_public_key: BitString::from_bytes(key)?,
    };
    Ok(spki.to_der()?)
}

/// SHA3-256 of the SubjectPublicKeyInfo DER of `key`: the node id.
///
/// A key of its algorithm's fixed length always gets the same DER prefix,
/// so that prefix is built once per algorithm and the key hashed after it,
/// without building the DER each time (node ids are computed for every
/// transaction a chain node admits).
pub(super) fn spki_hash(alg: Algorithm, key: &[u8]) -> Result<[u8; 32], CryptoError> {
    use std::sync::OnceLock;
    static FALCON: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    static ED25519: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let cell = match alg {
        Algorithm::FnDsa1024 => &FALCON,
        Algorithm::Ed25519 => &ED25519,
    };
    let len = alg.public_key_len();
    let prefix = cell.get_or_init(|| {
        let der = spki_der(alg, &vec![0u8; len]).ok()?;
        Some(der[..der.len() - len].to_vec())
    });
    match prefix {
        Some(p) if key.len() == len => Ok(super::sha3_256_parts(&[p, key])),
        _ => Ok(super::sha3_256(&spki_der(alg, key)?)),
    }
}

pub(super) fn parse_spki(der: &[u8]) -> Result<(Algorithm, Vec<u8>), CryptoError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(der)?;
    if spki.algorithm.parameters.is_some() {
        return Err(CryptoError::Encoding(
            "public key algorithm parameters must be absent".into(),
        ));
    }
    let alg = Algorithm::from_oid(&spki.algorithm.oid)?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CryptoError::Encoding("public key bit string has unused bits".into()))?;
    Ok((alg, key.to_vec()))
}

type PrivateKeyInfo = pkcs8::PrivateKeyInfoOwned;

pub(super) fn pkcs8_der(kp: &KeyPair) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let alg = kp.algorithm();
    let secret = kp.secret_bytes();
    let (private_key, public_key) = match alg {
        // FN-DSA has no standard PKCS#8 profile yet: the raw secret key in
        // the OCTET STRING, the public key alongside (OneAsymmetricKey v2).
        Algorithm::FnDsa1024 => (
            OctetString::new(secret.as_slice())?,
            Some(BitString::from_bytes(kp.public_key().as_bytes())?),
        ),
        // RFC 8410: privateKey is an OCTET STRING holding CurvePrivateKey,
        // itself an OCTET STRING of the 32-byte seed.
        Algorithm::Ed25519 => {
            let inner = Zeroizing::new(OctetString::new(secret.as_slice())?.to_der()?);
            (OctetString::new(inner.as_slice())?, None)
        }
    };
    let mut info = PrivateKeyInfo::new(algorithm_identifier(alg), private_key);
    info.public_key = public_key;
    Ok(Zeroizing::new(info.to_der()?))
}

pub(super) fn parse_pkcs8(der: &[u8]) -> Result<KeyPair, CryptoError> {
    let info = PrivateKeyInfo::from_der(der)?;
    if info.algorithm.parameters.is_some() {
        return Err(CryptoError::Encoding(
            "private key algorithm parameters must be absent".into(),
        ));
    }
    let alg = Algorithm::from_oid(&info.algorithm.oid)?;
    let kp = match alg {
        Algorithm::FnDsa1024 => KeyPair::from_secret_bytes(alg, info.private_key.as_bytes())?,
        Algorithm::Ed25519 => {
            let inner = OctetString::from_der(info.private_key.as_bytes())?;
            KeyPair::from_secret_bytes(alg, inner.as_bytes())?
        }
    };
    if let Some(pk) = &info.public_key {
        if pk.as_bytes() != Some(kp.public_key().as_bytes()) {
            return Err(CryptoError::Encoding(
                "embedded public key does not match the secret key".into(),
            ));
        }
    }
    Ok(kp)
}

pub(super) fn pem_encode(label: &str, der: &[u8]) -> String {
    // Only fails for labels that are not valid PEM; ours are constants.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

pub(super) fn pem_decode(expected_label: &str, pem: &str) -> Result<Vec<u8>, CryptoError> {
    let (label, der) =
        der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| CryptoError::Encoding(format!("PEM: {e}")))?;
    if label != expected_label {
        return Err(CryptoError::Encoding(format!(
            "expected PEM label {expected_label}, found {label}"
        )));
    }
    Ok(der)
}

pub(super) fn compact_encode(alg: Algorithm, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&compact_header(alg, bytes.len()));
    out.extend_from_slice(bytes);
    out
}

/// `version | alg | len`: what precedes the bytes in the compact form.
pub(super) fn compact_header(alg: Algorithm, len: usize) -> [u8; 4] {
    // Lengths are bounded by the algorithm (at most a few kB), so they fit.
    let len = (len as u16).to_be_bytes();
    [ENCODING_VERSION, alg.id(), len[0], len[1]]
}

/// Decodes `version | alg | len | bytes` from the front of `buf`; the length
/// must be exactly the one the algorithm prescribes (`expected_len`).
pub(super) fn compact_decode(
    buf: &[u8],
    expected_len: fn(Algorithm) -> usize,
) -> Result<(Algorithm, &[u8], &[u8]), CryptoError> {
    let [version, alg, l0, l1, rest @ ..] = buf else {
        return Err(CryptoError::Encoding(format!(
            "compact encoding needs 4 header bytes, got {}",
            buf.len()
        )));
    };
    if *version != ENCODING_VERSION {
        return Err(CryptoError::Encoding(format!("unsupported encoding version {version}")));
    }
    let alg = Algorithm::from_id(*alg)?;
    let len = u16::from_be_bytes([*l0, *l1]) as usize;
    if len != expected_len(alg) {
        return Err(CryptoError::Encoding(format!(
            "{alg} value must be {} bytes, header says {len}",
            expected_len(alg)
        )));
    }
    if rest.len() < len {
        return Err(CryptoError::Encoding(format!(
            "truncated: need {len} bytes, have {}",
            rest.len()
        )));
    }
    let (value, rest) = rest.split_at(len);
    Ok((alg, value, rest))
}

/// Writes a key pair as PKCS#8 PEM, readable by the owner only (0600).
/// The file is written to a temporary name and renamed into place, so a
/// crash never leaves a half-written key. Refuses to overwrite unless
/// `overwrite` is set.
pub fn write_key_file(path: &Path, kp: &KeyPair, overwrite: bool) -> crate::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source, what: &str| crate::Error::Io {
        context: format!("{what} {}", path.display()),
        source,
    };
    if !overwrite && path.exists() {
        return Err(io(
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "refusing to overwrite an existing key (use --force)",
            ),
            "writing key",
        ));
    }
    let pem = kp.to_pem()?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io(e, "creating key file"))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io(e, "writing key"))?;
    std::fs::rename(&tmp, path).map_err(|e| io(e, "renaming key into"))?;
    Ok(())
}

/// Reads a PKCS#8 PEM key file, refusing files that group or others can
/// read (like ssh does): a leaked node key is a stolen identity.
pub fn read_key_file(path: &Path) -> crate::Result<KeyPair> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| crate::Error::Io {
        context: format!("reading key {}", path.display()),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("key file has mode {mode:o}; run `chmod 600 {}`", path.display()),
        )));
    }
    let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    Ok(KeyPair::from_pem(&pem)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn node_ids_hash_the_full_spki_der() {
        for alg in [Algorithm::FnDsa1024, Algorithm::Ed25519] {
            let kp = KeyPair::generate(alg);
            let der = spki_der(alg, kp.public_key().as_bytes()).unwrap();
            assert_eq!(
                spki_hash(alg, kp.public_key().as_bytes()).unwrap(),
                crate::crypto::sha3_256(&der)
            );
            assert_eq!(kp.public_key().node_id().0, crate::crypto::sha3_256(&der));
        }
    }

    #[test]
    fn key_files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let kp = KeyPair::generate(Algorithm::Ed25519);
        write_key_file(&path, &kp, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().public_key(), kp.public_key());
        // no silent overwrite
        assert!(write_key_file(&path, &kp, false).is_err());
        write_key_file(&path, &KeyPair::generate(Algorithm::Ed25519), true).unwrap();
        // group-readable keys are refused with the fix in the message
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn ed25519_pkcs8_is_the_rfc8410_form() {
        let kp = KeyPair::generate(Algorithm::Ed25519);
        let der = kp.to_pkcs8_der().unwrap();
        // RFC 8410 section 10.3 prefix for a v1 Ed25519 private key.
        assert_eq!(
            &der[..16],
            &[0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
        );
    }

    #[test]
    fn mismatched_embedded_public_key_is_refused() {
        let a = KeyPair::generate(Algorithm::FnDsa1024);
        let b = KeyPair::generate(Algorithm::FnDsa1024);
        let mut info = PrivateKeyInfo::new(
            algorithm_identifier(Algorithm::FnDsa1024),
            OctetString::new(a.secret_bytes().as_slice()).unwrap(),
        );
        info.public_key = Some(BitString::from_bytes(b.public_key().as_bytes()).unwrap());
        let err = parse_pkcs8(&info.to_der().unwrap()).unwrap_err();
        assert!(matches!(err, CryptoError::Encoding(_)));
    }
}
