//! Bounded, TTL-limited cache of the message ids already seen.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::MessageId;

/// The set of message ids seen recently, bounded both in size and in age.
///
/// Entries are kept in insertion order; [`SeenCache::expire`] drops those
/// older than the TTL and [`SeenCache::insert`] evicts the oldest one when
/// the cache is full. Every operation is O(1) amortised. Inserting an id
/// already present does not refresh its age. Time is supplied by the caller
/// and assumed monotonic (an `Instant` is).
///
/// The set is only ever probed, never iterated, so its hash order does not
/// affect determinism.
#[derive(Debug, Clone)]
pub struct SeenCache {
    ids: HashSet<MessageId>,
    order: VecDeque<(MessageId, Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl SeenCache {
    /// An empty cache holding at most `capacity` ids (at least 1) for at most
    /// `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// Records `id` as seen at `now`; returns `true` if it was not already
    /// present. Evicts the oldest entry when full.
    pub fn insert(&mut self, id: MessageId, now: Instant) -> bool {
        if self.ids.contains(&id) {
            return false;
        }
        while self.ids.len() >= self.capacity {
            match self.order.pop_front() {
                Some((old, _)) => {
                    self.ids.remove(&old);
                }
                None => break,
            }
        }
        self.ids.insert(id);
        self.order.push_back((id, now));
        true
    }

    /// Whether `id` is in the cache (expiry happens in [`SeenCache::expire`]).
    pub fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains(id)
    }

    /// Drops every entry inserted `ttl` or more before `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(id, at)) = self.order.front() {
            if now.saturating_duration_since(at) < self.ttl {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&id);
        }
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the cache holds no id.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The maximum number of ids held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId([n; 32])
    }

    #[test]
    fn insert_contains_and_duplicates() {
        let t0 = Instant::now();
        let mut c = SeenCache::new(10, Duration::from_secs(60));
        assert!(c.is_empty());
        assert!(c.insert(id(1), t0));
        assert!(!c.insert(id(1), t0));
        assert!(c.contains(&id(1)));
        assert!(!c.contains(&id(2)));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn evicts_oldest_when_full() {
        let t0 = Instant::now();
        let mut c = SeenCache::new(3, Duration::from_secs(60));
        for n in 0..5 {
            assert!(c.insert(id(n), t0 + Duration::from_secs(u64::from(n))));
        }
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&id(0)) && !c.contains(&id(1)));
        assert!(c.contains(&id(2)) && c.contains(&id(3)) && c.contains(&id(4)));
        // An evicted id is new again.
        assert!(c.insert(id(0), t0));
        assert!(!c.contains(&id(2)));
    }

    #[test]
    fn expires_by_ttl() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut c = SeenCache::new(100, ttl);
        c.insert(id(1), t0);
        c.insert(id(2), t0 + Duration::from_secs(5));
        c.expire(t0 + Duration::from_secs(9));
        assert_eq!(c.len(), 2);
        c.expire(t0 + ttl);
        assert!(!c.contains(&id(1)) && c.contains(&id(2)));
        c.expire(t0 + Duration::from_secs(100));
        assert!(c.is_empty());
        // Re-inserting after expiry counts as new; the duplicate did not
        // refresh the age either.
        assert!(c.insert(id(1), t0 + Duration::from_secs(100)));
        assert!(!c.insert(id(1), t0 + Duration::from_secs(105)));
        c.expire(t0 + Duration::from_secs(110));
        assert!(c.is_empty());
    }

    #[test]
    fn zero_capacity_is_clamped() {
        let mut c = SeenCache::new(0, Duration::from_secs(1));
        assert_eq!(c.capacity(), 1);
        assert!(c.insert(id(1), Instant::now()));
        assert!(c.contains(&id(1)));
    }
}
