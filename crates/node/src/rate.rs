//! Per-peer rate limits: a token bucket of bytes per peer, so one peer cannot make a
//! node spend all its time decoding and checking what it sends.

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

#[cfg(test)]
mod tests {
    use super::TokenBucket;

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
