//! Sender keys already decoded, by account, so that a node admitting many
//! transactions from the same senders decodes each key once, and finds the
//! key of a transaction that names only its account without a state read.
//!
//! Decoding an FN-DSA-1024 public key (checking it, precomputing its NTT
//! form, hashing it for the account id) costs about as much as verifying a
//! signature with it; senders that send more than once are the common
//! case (wallets, exchanges, services). The cache is bounded: two
//! generations of at most `capacity` keys each; when the current one
//! fills, it becomes the previous one and the oldest is dropped, so keys
//! in use survive and the memory stays bounded.

use std::collections::HashMap;
use std::sync::Mutex;

use stoq::crypto::{CryptoError, PublicKey};

use super::tx::AccountId;

/// A bounded cache of decoded public keys by account (the hash of the
/// key, so an entry can never be the wrong key for its account).
#[derive(Debug)]
pub struct KeyCache {
    capacity: usize,
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<AccountId, PublicKey>,
    previous: HashMap<AccountId, PublicKey>,
    hits: u64,
    misses: u64,
}

impl KeyCache {
    /// A cache holding up to about `2 * capacity` keys.
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Generations::default()),
        }
    }

    /// The key whose compact encoding is `raw`, decoded once.
    pub fn get_or_decode(&self, raw: &[u8]) -> Result<PublicKey, CryptoError> {
        let account = PublicKey::node_id_of_compact(raw)?.0;
        if let Some(k) = self.get(&account) {
            return Ok(k);
        }
        // Decode outside the lock: it is the expensive part.
        let key = PublicKey::from_compact(raw)?;
        self.insert(key.clone());
        Ok(key)
    }

    /// The key of `account`, if held (counted as a hit or a miss).
    pub fn get(&self, account: &AccountId) -> Option<PublicKey> {
        let mut g = self.lock();
        if let Some(k) = g.current.get(account).cloned() {
            g.hits += 1;
            return Some(k);
        }
        if let Some(k) = g.previous.remove(account) {
            g.hits += 1;
            self.put(&mut g, k.clone());
            return Some(k);
        }
        g.misses += 1;
        None
    }

    /// Holds `key` (decoded elsewhere, e.g. read from the chain's registry).
    pub fn insert(&self, key: PublicKey) {
        let mut g = self.lock();
        self.put(&mut g, key);
    }

    fn put(&self, g: &mut Generations, key: PublicKey) {
        if g.current.len() >= self.capacity {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current.insert(key.node_id().0, key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        let g = self.lock();
        (g.hits, g.misses)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stoq::crypto::{Algorithm, KeyPair};

    #[test]
    fn keys_are_decoded_once_and_the_cache_stays_bounded() {
        let keys: Vec<KeyPair> = (0..5).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
        let cache = KeyCache::new(2);
        let raw: Vec<Vec<u8>> = keys.iter().map(|k| k.public_key().to_compact()).collect();
        assert_eq!(&cache.get_or_decode(&raw[0]).expect("decode"), keys[0].public_key());
        assert_eq!(&cache.get_or_decode(&raw[0]).expect("cached"), keys[0].public_key());
        assert_eq!(cache.stats(), (1, 1));
        for r in &raw {
            cache.get_or_decode(r).expect("decode");
        }
        assert!(cache.len() <= 4, "{}", cache.len());
        // The most recent keys are still there.
        let before = cache.stats();
        cache.get_or_decode(&raw[4]).expect("cached");
        assert_eq!(cache.stats().0, before.0 + 1);
        // Garbage is refused and not cached.
        assert!(cache.get_or_decode(&raw[0][..100]).is_err());
        assert!(cache.len() <= 4);
        // Found by account too; an account never seen is a miss.
        assert_eq!(
            cache.get(&keys[4].public_key().node_id().0).as_ref(),
            Some(keys[4].public_key())
        );
        assert_eq!(cache.get(&[7; 32]), None);
        let fresh = KeyCache::new(2);
        fresh.insert(keys[1].public_key().clone());
        assert_eq!(&fresh.get_or_decode(&raw[1]).expect("held"), keys[1].public_key());
        assert_eq!(fresh.stats(), (1, 0));
    }
}
