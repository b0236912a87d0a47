//! The hash map of the hot in-memory indexes (state read caches, the
//! mempool's senders and ids).
//!
//! std's SipHash was about 1.3 % of a validator's CPU under a flood of
//! transfers (`hypermesh bench consensus`). aHash is several times faster
//! on short keys and, keyed at random per map like SipHash, keeps the
//! maps safe from keys chosen to collide (their keys come from
//! transactions).

/// A `HashMap` with aHash, randomly keyed.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
