//! Algorithm-agile public keys, signatures and key pairs.

use rand_core::{CryptoRng, RngCore};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

use bytes::Bytes;

use super::falcon::{FalconSigner, FalconVerifier};
use super::{ed25519, encoding, falcon, Algorithm, CryptoError, NodeId};

/// A public key tagged with its algorithm. Cheap to clone; the key is
/// decoded once at construction so verification does no parsing.
#[derive(Clone)]
pub struct PublicKey(Arc<PublicKeyInner>);

struct PublicKeyInner {
    alg: Algorithm,
    bytes: Vec<u8>,
    verifier: Verifier,
    node_id: NodeId,
}

enum Verifier {
    Falcon(FalconVerifier),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Builds a key from its raw encoding for `alg`, refusing bytes that do
    /// not decode.
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Self, CryptoError> {
        let verifier = match alg {
            Algorithm::FnDsa1024 => Verifier::Falcon(FalconVerifier::decode(bytes)?),
            Algorithm::Ed25519 => Verifier::Ed25519(ed25519::decode_public(bytes)?),
        };
        let node_id = NodeId(encoding::spki_hash(alg, bytes)?);
        Ok(PublicKey(Arc::new(PublicKeyInner {
            alg,
            bytes: bytes.to_vec(),
            verifier,
            node_id,
        })))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.0.alg
    }

    /// The raw key encoding (without algorithm tag).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The node id: SHA3-256 of the SubjectPublicKeyInfo DER.
    pub fn node_id(&self) -> NodeId {
        self.0.node_id
    }

    /// Verifies `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        if sig.alg != self.0.alg {
            return Err(CryptoError::AlgorithmMismatch {
                key: self.0.alg,
                sig: sig.alg,
            });
        }
        self.verify_raw(msg, &sig.bytes)
    }

    /// Verifies an untagged signature made with this key's algorithm.
    pub fn verify_raw(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let ok = match &self.0.verifier {
            Verifier::Falcon(v) => v.verify(msg, sig),
            Verifier::Ed25519(v) => ed25519::verify(v, msg, sig),
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::BadSignature(self.0.alg))
        }
    }

    /// SubjectPublicKeyInfo DER (algorithm OID with parameters absent).
    pub fn to_spki_der(&self) -> Vec<u8> {
        // Cannot fail: the key was encoded the same way in `from_bytes`.
        encoding::spki_der(self.0.alg, &self.0.bytes).unwrap_or_default()
    }

    /// Parses SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let (alg, key) = encoding::parse_spki(der)?;
        Self::from_bytes(alg, &key)
    }

    /// PEM (`PUBLIC KEY`) form of the SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> String {
        encoding::pem_encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// Parses the PEM form.
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let der = encoding::pem_decode("PUBLIC KEY", pem)?;
        Self::from_spki_der(&der)
    }

    /// Compact wire form: `version | algorithm | length (u16 BE) | key`.
    pub fn to_compact(&self) -> Vec<u8> {
        encoding::compact_encode(self.0.alg, &self.0.bytes)
    }

    /// The node id of the key whose compact form is `buf`, without
    /// decoding the key (a hash, not the key's NTT precomputation): what a
    /// cache of decoded keys looks them up by. The key itself is not
    /// checked; decoding it does that.
    pub fn node_id_of_compact(buf: &[u8]) -> Result<NodeId, CryptoError> {
        let (alg, key, rest) = encoding::compact_decode(buf, Algorithm::public_key_len)?;
        if !rest.is_empty() {
            return Err(CryptoError::Encoding(format!(
                "{} trailing bytes after public key",
                rest.len()
            )));
        }
        Ok(NodeId(encoding::spki_hash(alg, key)?))
    }

    /// Parses the compact wire form; the whole input must be consumed.
    pub fn from_compact(buf: &[u8]) -> Result<Self, CryptoError> {
        let (alg, key, rest) = encoding::compact_decode(buf, Algorithm::public_key_len)?;
        if !rest.is_empty() {
            return Err(CryptoError::Encoding(format!(
                "{} trailing bytes after public key",
                rest.len()
            )));
        }
        Self::from_bytes(alg, key)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.alg == other.0.alg && self.0.bytes == other.0.bytes
    }
}
impl Eq for PublicKey {}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.alg.hash(state);
        self.0.bytes.hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.0.alg, self.0.node_id.short())
    }
}

/// A signature tagged with its algorithm. Cheap to clone: the bytes are
/// shared (and can be a slice of a received buffer, see
/// [`Signature::from_compact_shared`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    alg: Algorithm,
    bytes: Bytes,
}

impl Signature {
    /// Wraps raw signature bytes, checking the length for the algorithm.
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != alg.signature_len() {
            return Err(CryptoError::Encoding(format!(
                "{alg} signature must be {} bytes, got {}",
                alg.signature_len(),
                bytes.len()
            )));
        }
        Ok(Signature {
            alg,
            bytes: Bytes::copy_from_slice(bytes),
        })
    }

    /// The signature's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The raw signature bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Compact wire form: `version | algorithm | length (u16 BE) | bytes`.
    pub fn to_compact(&self) -> Vec<u8> {
        encoding::compact_encode(self.alg, &self.bytes)
    }

    /// The first four bytes of [`Signature::to_compact`] (what precedes the
    /// raw bytes), for hashing the compact form without building it.
    pub fn compact_header(&self) -> [u8; 4] {
        encoding::compact_header(self.alg, self.bytes.len())
    }

    /// Parses one compact signature from the front of `buf`, returning the
    /// rest (signatures are often followed by more fields).
    pub fn from_compact_prefix(buf: &[u8]) -> Result<(Self, &[u8]), CryptoError> {
        let (alg, bytes, rest) = encoding::compact_decode(buf, Algorithm::signature_len)?;
        Ok((
            Signature {
                alg,
                bytes: Bytes::copy_from_slice(bytes),
            },
            rest,
        ))
    }

    /// Parses `compact`, which must be exactly one compact signature,
    /// keeping a slice of it rather than a copy (a node that receives many
    /// signed messages in one buffer holds them without copying).
    pub fn from_compact_shared(compact: &Bytes) -> Result<Self, CryptoError> {
        let (alg, bytes, rest) = encoding::compact_decode(compact, Algorithm::signature_len)?;
        if !rest.is_empty() {
            return Err(CryptoError::Encoding(format!(
                "{} trailing bytes after the signature",
                rest.len()
            )));
        }
        Ok(Signature {
            alg,
            bytes: compact.slice_ref(bytes),
        })
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}, {} bytes)", self.alg, self.bytes.len())
    }
}

/// A signing key pair. Cheap to clone and safe to share across threads:
/// FN-DSA signers are pooled so concurrent handshakes sign in parallel.
#[derive(Clone)]
pub struct KeyPair {
    secret: Arc<Secret>,
    public: PublicKey,
}

enum Secret {
    Falcon(FalconSigner),
    Ed25519(ed25519_dalek::SigningKey),
}

impl KeyPair {
    /// Generates a fresh key pair from the operating system's RNG.
    pub fn generate(alg: Algorithm) -> Self {
        Self::generate_with(alg, &mut rand_core::OsRng)
    }

    /// Generates a key pair from a caller-supplied RNG (deterministic tests
    /// and simulations seed it).
    pub fn generate_with<R: CryptoRng + RngCore>(alg: Algorithm, rng: &mut R) -> Self {
        let secret = match alg {
            Algorithm::FnDsa1024 => {
                let (sk, _) = falcon::generate(rng);
                Self::from_secret_bytes(alg, &sk)
            }
            Algorithm::Ed25519 => {
                let sk = ed25519::generate(rng);
                Self::from_secret_bytes(alg, sk.as_bytes())
            }
        };
        // Freshly generated bytes always decode.
        secret.unwrap_or_else(|e| unreachable!("generated key does not decode: {e}"))
    }

    /// Rebuilds a key pair from its raw secret encoding (FN-DSA secret key or
    /// Ed25519 seed).
    pub fn from_secret_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Self, CryptoError> {
        let (secret, public) = match alg {
            Algorithm::FnDsa1024 => {
                let (signer, vk) = FalconSigner::decode(bytes)?;
                (Secret::Falcon(signer), PublicKey::from_bytes(alg, &vk)?)
            }
            Algorithm::Ed25519 => {
                let sk = ed25519::decode_secret(bytes)?;
                let pk = PublicKey::from_bytes(alg, sk.verifying_key().as_bytes())?;
                (Secret::Ed25519(sk), pk)
            }
        };
        Ok(KeyPair {
            secret: Arc::new(secret),
            public,
        })
    }

    /// The raw secret encoding (zeroized on drop).
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        match &*self.secret {
            Secret::Falcon(s) => Zeroizing::new(s.encoded().to_vec()),
            Secret::Ed25519(k) => Zeroizing::new(k.to_bytes().to_vec()),
        }
    }

    /// The key pair's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The node id of the public half.
    pub fn node_id(&self) -> NodeId {
        self.public.node_id()
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Signature, CryptoError> {
        self.sign_with(&mut rand_core::OsRng, msg)
    }

    /// Signs `msg` drawing the signature's randomness from `rng`: a seeded
    /// RNG makes signatures reproducible, which deterministic simulations
    /// need (Ed25519 signatures are deterministic anyway).
    pub fn sign_with<R: CryptoRng + RngCore>(&self, rng: &mut R, msg: &[u8]) -> Result<Signature, CryptoError> {
        let bytes = match &*self.secret {
            Secret::Falcon(s) => s.sign_with(rng, msg)?,
            Secret::Ed25519(k) => ed25519::sign(k, msg),
        };
        Ok(Signature {
            alg: self.algorithm(),
            bytes: Bytes::from(bytes),
        })
    }

    /// PKCS#8 DER (`OneAsymmetricKey` v2 with the public key for FN-DSA;
    /// RFC 8410 form for Ed25519).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        encoding::pkcs8_der(self)
    }

    /// Parses PKCS#8 DER; for FN-DSA the embedded public key, if any, must
    /// match the one derived from the secret key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        encoding::parse_pkcs8(der)
    }

    /// PEM (`PRIVATE KEY`) form.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, CryptoError> {
        Ok(Zeroizing::new(encoding::pem_encode(
            "PRIVATE KEY",
            &self.to_pkcs8_der()?,
        )))
    }

    /// Parses the PEM form.
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let der = Zeroizing::new(encoding::pem_decode("PRIVATE KEY", pem)?);
        Self::from_pkcs8_der(&der)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({:?})", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn both() -> [KeyPair; 2] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        [
            KeyPair::generate_with(Algorithm::FnDsa1024, &mut rng),
            KeyPair::generate_with(Algorithm::Ed25519, &mut rng),
        ]
    }

    #[test]
    fn sign_verify_and_reject_tampering() {
        for kp in both() {
            let sig = kp.sign(b"hello").unwrap();
            assert_eq!(sig.as_bytes().len(), kp.algorithm().signature_len());
            kp.public_key().verify(b"hello", &sig).unwrap();
            assert_eq!(
                kp.public_key().verify(b"hellp", &sig),
                Err(CryptoError::BadSignature(kp.algorithm()))
            );
            let mut bad = sig.as_bytes().to_vec();
            bad[10] ^= 1;
            assert!(kp.public_key().verify_raw(b"hello", &bad).is_err());
            assert!(kp.public_key().verify_raw(b"hello", &bad[..5]).is_err());
        }
    }

    #[test]
    fn signature_of_another_algorithm_is_refused() {
        let [f, e] = both();
        let sig = e.sign(b"m").unwrap();
        assert_eq!(
            f.public_key().verify(b"m", &sig),
            Err(CryptoError::AlgorithmMismatch {
                key: Algorithm::FnDsa1024,
                sig: Algorithm::Ed25519
            })
        );
    }

    #[test]
    fn deterministic_generation_from_seed() {
        let a = KeyPair::generate_with(Algorithm::FnDsa1024, &mut rand::rngs::StdRng::seed_from_u64(1));
        let b = KeyPair::generate_with(Algorithm::FnDsa1024, &mut rand::rngs::StdRng::seed_from_u64(1));
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.node_id(), b.node_id());
    }

    #[test]
    fn encodings_round_trip() {
        for kp in both() {
            let pk = kp.public_key();
            assert_eq!(&PublicKey::from_compact(&pk.to_compact()).unwrap(), pk);
            assert_eq!(PublicKey::node_id_of_compact(&pk.to_compact()).unwrap(), pk.node_id());
            assert_eq!(&PublicKey::from_spki_der(&pk.to_spki_der()).unwrap(), pk);
            assert_eq!(&PublicKey::from_pem(&pk.to_pem()).unwrap(), pk);
            let kp2 = KeyPair::from_pkcs8_der(&kp.to_pkcs8_der().unwrap()).unwrap();
            assert_eq!(kp2.public_key(), pk);
            let kp3 = KeyPair::from_pem(&kp.to_pem().unwrap()).unwrap();
            assert_eq!(kp3.secret_bytes(), kp.secret_bytes());
            let sig = kp.sign(b"x").unwrap();
            let mut wire = sig.to_compact();
            assert_eq!(wire[..4], sig.compact_header());
            let shared = Bytes::from(wire.clone());
            let sig3 = Signature::from_compact_shared(&shared).unwrap();
            assert_eq!(sig3, sig);
            assert_eq!(sig3.as_bytes().as_ptr(), shared[4..].as_ptr(), "a slice, not a copy");
            assert!(Signature::from_compact_shared(&shared.slice(..shared.len() - 1)).is_err());
            wire.extend_from_slice(b"rest");
            let (sig2, rest) = Signature::from_compact_prefix(&wire).unwrap();
            assert_eq!(sig2, sig);
            assert_eq!(rest, b"rest");
        }
    }

    #[test]
    fn malformed_encodings_are_refused() {
        let [f, _] = both();
        let compact = f.public_key().to_compact();
        // wrong version, unknown algorithm, truncated, trailing bytes, bad key bytes
        let mut v = compact.clone();
        v[0] = 9;
        assert!(PublicKey::from_compact(&v).is_err());
        let mut v = compact.clone();
        v[1] = 77;
        assert!(PublicKey::from_compact(&v).is_err());
        assert!(PublicKey::from_compact(&compact[..100]).is_err());
        let mut v = compact.clone();
        v.push(0);
        assert!(PublicKey::from_compact(&v).is_err());
        assert!(PublicKey::from_bytes(Algorithm::FnDsa1024, &[0xff; 1793]).is_err());
        assert!(PublicKey::from_bytes(Algorithm::Ed25519, &[1; 31]).is_err());
        assert!(Signature::from_bytes(Algorithm::FnDsa1024, &[0; 64]).is_err());
        assert!(KeyPair::from_pkcs8_der(b"\x30\x03\x02\x01\x00").is_err());
        assert!(KeyPair::from_secret_bytes(Algorithm::FnDsa1024, &[0; 10]).is_err());
    }

    #[test]
    fn node_id_commits_to_the_algorithm_and_key() {
        let [f, e] = both();
        assert_ne!(f.node_id(), e.node_id());
        assert_eq!(
            f.node_id(),
            NodeId(crate::crypto::sha3_256(&f.public_key().to_spki_der()))
        );
    }
}
