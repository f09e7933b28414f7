//! Per-peer rate limits: a token bucket of bytes per peer, so one peer cannot make a
//! node spend all its time decoding and checking what it sends; and the strikes held
//! against peers for what they sent.

use std::collections::HashMap;
use std::hash::Hash;

/// Refills at `per_s` tokens a second up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    per_s: u64,
    burst: u64,
    tokens: u64,
    at_ms: u64,
}

impl TokenBucket {
    pub fn new(per_s: u64, burst: u64, now_ms: u64) -> TokenBucket {
        TokenBucket { per_s, burst, tokens: burst, at_ms: now_ms }
    }

    fn refill(&mut self, now_ms: u64) {
        let refill = now_ms.saturating_sub(self.at_ms).saturating_mul(self.per_s) / 1_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(self.burst);
            self.at_ms = now_ms;
        }
    }

    /// Takes `cost` tokens if there are that many.
    pub fn take(&mut self, now_ms: u64, cost: u64) -> bool {
        self.refill(now_ms);
        if self.tokens < cost {
            return false;
        }
        self.tokens -= cost;
        true
    }

    /// Whether the bucket has refilled to its burst, as a new one would be.
    pub fn is_full(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        self.tokens >= self.burst
    }

    /// Takes `cost` tokens, or all there are: for a cost known only after the work was
    /// done, which then waits for the bucket to refill before the next.
    pub fn spend(&mut self, now_ms: u64, cost: u64) {
        self.refill(now_ms);
        self.tokens = self.tokens.saturating_sub(cost);
    }
}

/// Faults held against peers: a peer with `limit` strikes is barred, until it has had
/// none for `memory_ms`, when it is forgotten (peer ids are free to make, so a map that
/// never forgets grows with every one an attacker makes).
#[derive(Debug)]
pub struct Strikes<K> {
    held: HashMap<K, (u32, u64)>,
    limit: u32,
    memory_ms: u64,
}

impl<K: Hash + Eq> Strikes<K> {
    pub fn new(limit: u32, memory_ms: u64) -> Strikes<K> {
        Strikes { held: HashMap::new(), limit, memory_ms }
    }

    /// Holds one more fault against `peer`; returns its strikes.
    pub fn strike(&mut self, peer: K, now_ms: u64) -> u32 {
        let (count, last) = self.held.entry(peer).or_insert((0, now_ms));
        *count += 1;
        *last = now_ms;
        *count
    }

    pub fn is_barred(&self, peer: &K, now_ms: u64) -> bool {
        self.held.get(peer).is_some_and(|(count, last)| *count >= self.limit && !self.expired(*last, now_ms))
    }

    /// Forgets the peers with no strike for `memory_ms`.
    pub fn forget_old(&mut self, now_ms: u64) {
        let memory_ms = self.memory_ms;
        self.held.retain(|_, (_, last)| now_ms.saturating_sub(*last) < memory_ms);
    }

    fn expired(&self, last: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(last) >= self.memory_ms
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::{Strikes, TokenBucket};

    /// Finding 20: strikes were kept forever, one entry per peer id ever seen.
    #[test]
    fn strikes_bar_a_peer_and_are_forgotten_after_a_quiet_spell() {
        let mut strikes = Strikes::new(3, 60_000);
        for at in [0, 10, 20] {
            strikes.strike("liar", at);
        }
        strikes.strike("clumsy", 30);
        assert!(strikes.is_barred(&"liar", 1_000) && !strikes.is_barred(&"clumsy", 1_000));
        assert!(!strikes.is_barred(&"liar", 60_020), "barred for a while, not for ever");
        strikes.forget_old(60_025);
        assert_eq!(strikes.len(), 1, "the liar is forgotten, the clumsy peer not yet");
        strikes.forget_old(90_030);
        assert!(strikes.is_empty());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut bucket = TokenBucket::new(1_000, 2_000, 0);
        assert!(bucket.take(0, 2_000));
        assert!(!bucket.take(0, 1), "the burst is spent");
        assert!(!bucket.take(499, 500), "499 ms refill 499 tokens");
        assert!(bucket.take(500, 500));
        assert!(bucket.take(10_000, 2_000) && !bucket.take(10_000, 1), "refills stop at the burst");
        bucket.spend(12_000, 5_000);
        assert!(!bucket.take(12_000, 1), "a cost past what was there empties the bucket");
    }
}
