//! FN-DSA-1024 through the `fn-dsa` crate.
//!
//! Signing is pure FN-DSA with an empty domain context and no pre-hash: TLS
//! (through webpki) hands verifiers only `(key, message, signature)`, so the
//! context has to be a constant of the algorithm. Callers separate domains in
//! the message itself.

use fn_dsa::{
    sign_key_size, signature_size, vrfy_key_size, KeyPairGenerator, KeyPairGenerator1024, SigningKey, SigningKey1024,
    VerifyingKey, VerifyingKey1024, DOMAIN_NONE, FN_DSA_LOGN_1024, HASH_ID_RAW,
};
use rand_core::{CryptoRng, RngCore};
use std::sync::Mutex;
use zeroize::Zeroizing;

use super::{Algorithm, CryptoError};

const LOGN: u32 = FN_DSA_LOGN_1024;
/// Decoded signing keys kept for reuse: decoding costs little next to a
/// signature, but each instance carries ~90 kB of scratch space, and
/// `sign` takes `&mut self`, so concurrent signers each need their own.
const MAX_POOLED_SIGNERS: usize = 8;

/// Generates a key pair; returns `(secret, public)` encodings.
pub(super) fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> (Zeroizing<Vec<u8>>, Vec<u8>) {
    let mut sk = Zeroizing::new(vec![0u8; sign_key_size(LOGN)]);
    let mut vk = vec![0u8; vrfy_key_size(LOGN)];
    let mut kg = Box::<KeyPairGenerator1024>::default();
    kg.keygen(LOGN, rng, &mut sk, &mut vk);
    (sk, vk)
}

/// A decoded verifying key (decode once, verify many times).
#[derive(Debug)]
pub(super) struct FalconVerifier(Box<VerifyingKey1024>);

impl FalconVerifier {
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        VerifyingKey1024::decode(bytes)
            .map(|k| FalconVerifier(Box::new(k)))
            .ok_or(CryptoError::InvalidPublicKey {
                alg: Algorithm::FnDsa1024,
                len: bytes.len(),
            })
    }

    pub(super) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.0.verify(sig, &DOMAIN_NONE, &HASH_ID_RAW, msg)
    }
}

/// One-shot verification from an encoded key (the path webpki takes).
pub(super) fn verify_encoded(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    FalconVerifier::decode(public_key)
        .map(|v| v.verify(msg, sig))
        .unwrap_or(false)
}

/// A secret key with a pool of decoded signers.
pub(super) struct FalconSigner {
    encoded: Zeroizing<Vec<u8>>,
    pool: Mutex<Vec<Box<SigningKey1024>>>,
}

impl FalconSigner {
    /// Decodes a secret key and derives its public key.
    pub(super) fn decode(encoded: &[u8]) -> Result<(Self, Vec<u8>), CryptoError> {
        let sk = SigningKey1024::decode(encoded).ok_or(CryptoError::InvalidSecretKey(Algorithm::FnDsa1024))?;
        let mut vk = vec![0u8; vrfy_key_size(LOGN)];
        sk.to_verifying_key(&mut vk);
        let signer = FalconSigner {
            encoded: Zeroizing::new(encoded.to_vec()),
            pool: Mutex::new(vec![Box::new(sk)]),
        };
        Ok((signer, vk))
    }

    pub(super) fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    pub(super) fn sign_with<R: CryptoRng + RngCore>(&self, rng: &mut R, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let pooled = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None);
        let mut sk = match pooled {
            Some(sk) => sk,
            None => Box::new(
                SigningKey1024::decode(&self.encoded).ok_or(CryptoError::InvalidSecretKey(Algorithm::FnDsa1024))?,
            ),
        };
        let mut sig = vec![0u8; signature_size(LOGN)];
        let ok = sk.sign(rng, &DOMAIN_NONE, &HASH_ID_RAW, msg, &mut sig);
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < MAX_POOLED_SIGNERS {
                pool.push(sk);
            }
        }
        ok.map(|()| sig).ok_or(CryptoError::SigningFailed(Algorithm::FnDsa1024))
    }
}
