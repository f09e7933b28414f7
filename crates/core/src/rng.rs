//! A deterministic random stream seeded from a hash (blake3 in extendable-output mode).
//!
//! Every random choice the protocol makes (tie breaks, verifier selection, spot checks)
//! draws from a stream seeded by block randomness and the purpose of the draw, so every
//! node makes the same choice.

use crate::hash::Hash;

pub struct DetRng(blake3::OutputReader);

impl DetRng {
    pub fn new(seed: &Hash, purpose: &str, context: &[&[u8]]) -> DetRng {
        let mut hasher = blake3::Hasher::new_keyed(&seed.0);
        let key = Hash::tagged(purpose, context);
        hasher.update(&key.0);
        DetRng(hasher.finalize_xof())
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// A uniform draw from `0..bound` without modulo bias; `bound` must be non-zero.
    pub fn below(&mut self, bound: u128) -> u128 {
        assert!(bound > 0, "DetRng::below needs a non-zero bound");
        let zone = u128::MAX - (u128::MAX % bound);
        loop {
            let wide = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
            if wide < zone {
                return wide % bound;
            }
        }
    }

    /// Picks up to `count` distinct items, each with probability proportional to its
    /// weight among those not yet picked (sampling units of weight without replacement).
    /// Items of zero weight are never picked.
    pub fn sample_weighted<T: Clone>(&mut self, items: &[(T, u128)], count: usize) -> Vec<T> {
        let mut pool: Vec<(T, u128)> = items.iter().filter(|(_, w)| *w > 0).cloned().collect();
        let mut picked = Vec::with_capacity(count.min(pool.len()));
        while picked.len() < count && !pool.is_empty() {
            let total: u128 = pool.iter().map(|(_, w)| *w).sum();
            let mut ticket = self.below(total);
            let index = pool
                .iter()
                .position(|(_, w)| {
                    if ticket < *w {
                        return true;
                    }
                    ticket -= w;
                    false
                })
                .expect("the ticket falls below the total weight");
            picked.push(pool.swap_remove(index).0);
        }
        picked
    }
}

/// A seeded stream for keys and nonces where a test or a replay needs the same bytes
/// every run; the stream is as unpredictable as its seed.
impl rand_core::RngCore for DetRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        DetRng::next_u64(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for DetRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_purpose_give_the_same_stream() {
        let seed = Hash::of_bytes(b"block 9");
        let a: Vec<_> = (0..4)
            .map({
                let mut r = DetRng::new(&seed, "test", &[]);
                move |_| r.next_u64()
            })
            .collect();
        let mut again = DetRng::new(&seed, "test", &[]);
        assert_eq!(a, (0..4).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(DetRng::new(&seed, "other", &[]).next_u64(), a[0]);
    }

    #[test]
    fn weighted_sampling_follows_weight_and_never_repeats() {
        let items = [("heavy", 900u128), ("light", 100), ("none", 0)];
        let mut heavy_first = 0;
        for i in 0u64..1000 {
            let mut rng = DetRng::new(&Hash::of_bytes(&i.to_le_bytes()), "t", &[]);
            let picked = rng.sample_weighted(&items, 3);
            assert_eq!(picked.len(), 2, "zero weight is never picked");
            assert_ne!(picked[0], picked[1]);
            heavy_first += usize::from(picked[0] == "heavy");
        }
        assert!((850..950).contains(&heavy_first), "{heavy_first}");
    }
}
