//! Algorithm identifiers: the compact id byte, the X.509 OID and the TLS
//! signature scheme code point of each signature algorithm.

use const_oid::ObjectIdentifier;
use std::fmt;

use super::CryptoError;

/// A signature algorithm the stack implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Algorithm {
    /// FN-DSA-1024 (FALCON-1024, the FIPS 206 track), via the `fn-dsa` crate.
    FnDsa1024 = 1,
    /// Ed25519, for classical peers only.
    Ed25519 = 2,
}

impl Algorithm {
    /// X.509 OID of FALCON-1024: Open Quantum Safe's `falcon1024`
    /// (1.3.9999.3.14). A label, not wire compatibility with round-3 Falcon.
    pub const FN_DSA_1024_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.9999.3.14");
    /// X.509 OID of Ed25519 (RFC 8410).
    pub const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

    /// The algorithm's X.509 object identifier (used with parameters absent).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Algorithm::FnDsa1024 => Self::FN_DSA_1024_OID,
            Algorithm::Ed25519 => Self::ED25519_OID,
        }
    }

    /// Looks an algorithm up by OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Result<Self, CryptoError> {
        if *oid == Self::FN_DSA_1024_OID {
            Ok(Algorithm::FnDsa1024)
        } else if *oid == Self::ED25519_OID {
            Ok(Algorithm::Ed25519)
        } else {
            Err(CryptoError::UnknownAlgorithm(oid.to_string()))
        }
    }

    /// Looks an algorithm up by its compact id byte.
    pub fn from_id(id: u8) -> Result<Self, CryptoError> {
        match id {
            1 => Ok(Algorithm::FnDsa1024),
            2 => Ok(Algorithm::Ed25519),
            other => Err(CryptoError::UnknownAlgorithm(format!("id {other}"))),
        }
    }

    /// The compact id byte.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Length in bytes of an encoded public key.
    pub fn public_key_len(self) -> usize {
        match self {
            Algorithm::FnDsa1024 => fn_dsa::vrfy_key_size(fn_dsa::FN_DSA_LOGN_1024),
            Algorithm::Ed25519 => 32,
        }
    }

    /// Length in bytes of a signature.
    pub fn signature_len(self) -> usize {
        match self {
            Algorithm::FnDsa1024 => fn_dsa::signature_size(fn_dsa::FN_DSA_LOGN_1024),
            Algorithm::Ed25519 => 64,
        }
    }

    /// Whether the algorithm resists a quantum adversary.
    pub fn is_post_quantum(self) -> bool {
        matches!(self, Algorithm::FnDsa1024)
    }

    /// Short name used in logs, config and CLI.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::FnDsa1024 => "fn-dsa-1024",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// Parses a name as printed by [`Algorithm::name`] (`falcon1024` is
    /// accepted too).
    pub fn from_name(name: &str) -> Result<Self, CryptoError> {
        match name.to_ascii_lowercase().as_str() {
            "fn-dsa-1024" | "fndsa1024" | "falcon1024" | "falcon-1024" => Ok(Algorithm::FnDsa1024),
            "ed25519" => Ok(Algorithm::Ed25519),
            other => Err(CryptoError::UnknownAlgorithm(other.to_string())),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_oids_and_names_round_trip() {
        for alg in [Algorithm::FnDsa1024, Algorithm::Ed25519] {
            assert_eq!(Algorithm::from_id(alg.id()).unwrap(), alg);
            assert_eq!(Algorithm::from_oid(&alg.oid()).unwrap(), alg);
            assert_eq!(Algorithm::from_name(alg.name()).unwrap(), alg);
        }
        assert!(Algorithm::from_id(0).is_err());
        assert!(Algorithm::from_id(3).is_err());
    }

    #[test]
    fn fn_dsa_sizes_are_the_standard_ones() {
        assert_eq!(Algorithm::FnDsa1024.public_key_len(), 1793);
        assert_eq!(Algorithm::FnDsa1024.signature_len(), 1280);
    }

    #[test]
    fn falcon_oid_der_matches_the_webpki_identifier() {
        use der::Encode;
        let der = Algorithm::FN_DSA_1024_OID.to_der().unwrap();
        assert_eq!(der, [0x06, 0x05, 0x2B, 0xCE, 0x0F, 0x03, 0x0E]);
    }
}
