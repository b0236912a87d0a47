//! Server nonces for proofs of possession: stateless to hand out (a MAC
//! over a timestamp, randomness and the caller's key), remembered once used
//! until they expire, so a signed request cannot be replayed.

use std::collections::HashMap;
use std::sync::Mutex;

use stoq::crypto::{sha3_256_parts, NodeId};

use crate::error::Refusal;
use crate::request::NONCE_LEN;

/// How long a nonce stays usable, ms.
pub(crate) const NONCE_TTL_MS: u64 = 120_000;

pub(crate) struct NonceBook {
    secret: [u8; 32],
    used: Mutex<UsedNonces>,
}

/// Redeemed nonces with their issue time, and when expired ones were last
/// dropped (at most once a second: a scan per request would cost O(n)).
#[derive(Default)]
struct UsedNonces {
    by_nonce: HashMap<[u8; NONCE_LEN], u64>,
    pruned_at_ms: u64,
}

impl NonceBook {
    pub(crate) fn new(secret: [u8; 32]) -> Self {
        NonceBook {
            secret,
            used: Mutex::new(UsedNonces::default()),
        }
    }

    fn mac(&self, ts: &[u8], rand: &[u8], peer: &NodeId) -> [u8; 16] {
        let h = sha3_256_parts(&[b"trustchain/nonce/v1", &self.secret, ts, rand, &peer.0]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&h[..16]);
        out
    }

    /// A fresh nonce for `peer`.
    pub(crate) fn issue(&self, peer: &NodeId, now_ms: u64) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&now_ms.to_be_bytes());
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce[8..24]);
        let mac = self.mac(&nonce[..8], &nonce[8..24], peer);
        nonce[24..].copy_from_slice(&mac);
        nonce
    }

    /// Checks a nonce was issued to `peer`, is fresh and unused, and marks
    /// it used.
    pub(crate) fn redeem(&self, nonce: &[u8; NONCE_LEN], peer: &NodeId, now_ms: u64) -> Result<(), Refusal> {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&nonce[..8]);
        let issued = u64::from_be_bytes(ts);
        if self.mac(&nonce[..8], &nonce[8..24], peer) != nonce[24..] {
            return Err(Refusal::Nonce(
                "not issued by this member to this connection's key".into(),
            ));
        }
        if now_ms.saturating_sub(issued) > NONCE_TTL_MS || issued > now_ms + 5_000 {
            return Err(Refusal::Nonce("expired".into()));
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if now_ms.saturating_sub(used.pruned_at_ms) >= 1_000 {
            used.by_nonce.retain(|_, at| now_ms.saturating_sub(*at) <= NONCE_TTL_MS);
            used.pruned_at_ms = now_ms;
        }
        if used.by_nonce.insert(*nonce, issued).is_some() {
            return Err(Refusal::Nonce("already used".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_bound_fresh_and_single_use() {
        let book = NonceBook::new([7; 32]);
        let a = NodeId([1; 32]);
        let b = NodeId([2; 32]);
        let n = book.issue(&a, 1_000_000);
        assert!(book.redeem(&n, &b, 1_000_001).is_err(), "other key");
        book.redeem(&n, &a, 1_000_001).unwrap();
        assert!(book.redeem(&n, &a, 1_000_002).is_err(), "replay");
        let old = book.issue(&a, 1_000_000);
        assert!(book.redeem(&old, &a, 1_000_000 + NONCE_TTL_MS + 1).is_err(), "expired");
        let mut forged = book.issue(&a, 1_000_000);
        forged[0] ^= 1;
        assert!(book.redeem(&forged, &a, 1_000_000).is_err(), "tampered");
    }
}
