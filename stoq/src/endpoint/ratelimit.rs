//! Sans-IO token buckets keyed by source /64, for new connections.

use std::collections::HashMap;
use std::time::Instant;

/// Token bucket per key; a key refills at `rate` tokens per second up to
/// `burst`. Idle keys are forgotten so memory stays bounded.
#[derive(Debug)]
pub struct PrefixRateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<u64, (f64, Instant)>,
    max_keys: usize,
}

impl PrefixRateLimiter {
    /// A limiter allowing `rate` per second with bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        PrefixRateLimiter {
            rate: rate.max(0.0),
            burst: burst.max(1.0),
            buckets: HashMap::new(),
            max_keys: 65_536,
        }
    }

    /// Takes one token for `key` at `now`; false means refuse.
    pub fn allow(&mut self, key: u64, now: Instant) -> bool {
        if self.buckets.len() >= self.max_keys && !self.buckets.contains_key(&key) {
            self.forget_full(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, last) = self.buckets.entry(key).or_insert((burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets that have refilled completely (they carry no state).
    fn forget_full(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .retain(|_, (tokens, last)| *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst);
    }

    /// Number of tracked prefixes.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_per_prefix() {
        let t0 = Instant::now();
        let mut rl = PrefixRateLimiter::new(2.0, 3.0);
        assert!((0..3).all(|_| rl.allow(1, t0)));
        assert!(!rl.allow(1, t0), "burst exhausted");
        assert!(rl.allow(2, t0), "another prefix is independent");
        assert!(!rl.allow(1, t0 + Duration::from_millis(400)));
        assert!(
            rl.allow(1, t0 + Duration::from_millis(500)),
            "refilled one token at 2/s"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut rl = PrefixRateLimiter::new(1000.0, 1.0);
        rl.max_keys = 10;
        for k in 0..100u64 {
            rl.allow(k, t0 + Duration::from_secs(k));
        }
        assert!(rl.tracked() <= 11);
    }
}
