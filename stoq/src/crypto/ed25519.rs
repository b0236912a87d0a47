//! Ed25519 through `ed25519-dalek`, for classical peers only.

use ed25519_dalek::{Signer, Verifier};
use rand_core::{CryptoRng, RngCore};

use super::{Algorithm, CryptoError};

pub(super) fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(rng)
}

pub(super) fn decode_secret(seed: &[u8]) -> Result<ed25519_dalek::SigningKey, CryptoError> {
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| CryptoError::InvalidSecretKey(Algorithm::Ed25519))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

pub(super) fn decode_public(bytes: &[u8]) -> Result<ed25519_dalek::VerifyingKey, CryptoError> {
    let invalid = || CryptoError::InvalidPublicKey {
        alg: Algorithm::Ed25519,
        len: bytes.len(),
    };
    let arr: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
    ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| invalid())
}

pub(super) fn sign(key: &ed25519_dalek::SigningKey, msg: &[u8]) -> Vec<u8> {
    key.sign(msg).to_bytes().to_vec()
}

pub(super) fn verify(key: &ed25519_dalek::VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    match ed25519_dalek::Signature::from_slice(sig) {
        // Strict verification refuses small-order keys and malleable signatures.
        Ok(sig) => key.verify_strict(msg, &sig).is_ok() && key.verify(msg, &sig).is_ok(),
        Err(_) => false,
    }
}
