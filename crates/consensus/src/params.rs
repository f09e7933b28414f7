//! Consensus parameters and their validation.

/// avalanchego's defaults are k = 20, alpha = 15, beta = 20, 4 polls in flight; we keep
/// its sample and quorum and run more polls in flight, which cuts finality on a global
/// network to about two round trips of polling (see docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Validators sampled per poll.
    pub k: usize,
    /// Votes in a poll needed to change preference.
    pub alpha_pref: usize,
    /// Votes in a poll needed to count towards confidence.
    pub alpha_conf: usize,
    /// Consecutive successful polls needed to accept.
    pub beta: u32,
    /// Polls in flight at once.
    pub concurrent_polls: usize,
    /// A poll counts what it has after this long.
    pub poll_timeout_ms: u64,
    /// Each scheduled proposer gets this long after the one before it.
    pub proposer_window_ms: u64,
    /// Scheduled proposers per height; after their windows anyone may propose.
    pub proposer_slots: usize,
    /// The first proposer waits until this long after its parent's timestamp. Without it an
    /// idle network makes empty blocks as fast as it can decide them, which makes the
    /// chain's block-count windows (bids, starts, reveals) too short in wall time for the
    /// providers that must act inside them. Zero proposes right after acceptance.
    pub min_block_interval_ms: u64,
    /// How far ahead of this node's clock another validator's clock may run: a header
    /// stamped later than that is not considered, and neither is a poll numbered later.
    pub clock_drift_ms: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            k: 20,
            alpha_pref: 15,
            alpha_conf: 15,
            beta: 20,
            concurrent_polls: 10,
            poll_timeout_ms: 500,
            proposer_window_ms: 1_000,
            proposer_slots: 3,
            min_block_interval_ms: 0,
            clock_drift_ms: 2_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("k must be at least 1")]
    ZeroK,
    #[error(
        "alpha_pref = {alpha_pref} must be more than k/2 = {k}/2 so that two conflicting blocks cannot both win a poll"
    )]
    AlphaPrefTooSmall { alpha_pref: usize, k: usize },
    #[error("alpha_conf = {alpha_conf} must be at least alpha_pref = {alpha_pref}")]
    AlphaConfBelowPref { alpha_pref: usize, alpha_conf: usize },
    #[error("alpha_conf = {alpha_conf} must be at most k = {k}")]
    AlphaConfAboveK { alpha_conf: usize, k: usize },
    #[error("polls in flight = {polls} must be at least 1 and at most beta = {beta}")]
    PollsOutOfRange { polls: usize, beta: u32 },
    #[error("timeouts, windows and slots must be more than zero")]
    ZeroTiming,
}

impl Params {
    /// Checks `k/2 < alpha_pref <= alpha_conf <= k` and `0 < polls <= beta`.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.k == 0 {
            return Err(ParamsError::ZeroK);
        }
        if 2 * self.alpha_pref <= self.k {
            return Err(ParamsError::AlphaPrefTooSmall { alpha_pref: self.alpha_pref, k: self.k });
        }
        if self.alpha_conf < self.alpha_pref {
            return Err(ParamsError::AlphaConfBelowPref { alpha_pref: self.alpha_pref, alpha_conf: self.alpha_conf });
        }
        if self.alpha_conf > self.k {
            return Err(ParamsError::AlphaConfAboveK { alpha_conf: self.alpha_conf, k: self.k });
        }
        if self.concurrent_polls == 0 || self.concurrent_polls as u64 > u64::from(self.beta) {
            return Err(ParamsError::PollsOutOfRange { polls: self.concurrent_polls, beta: self.beta });
        }
        if self.poll_timeout_ms == 0
            || self.proposer_window_ms == 0
            || self.proposer_slots == 0
            || self.clock_drift_ms == 0
        {
            return Err(ParamsError::ZeroTiming);
        }
        Ok(())
    }

    /// The sample size and thresholds for a set of `n` validators: with fewer than k
    /// validators every poll asks them all, and the thresholds scale to keep their ratio
    /// (rounded up, so they stay above half).
    pub fn scaled(&self, n: usize) -> (usize, usize, usize) {
        if n >= self.k {
            return (self.k, self.alpha_pref, self.alpha_conf);
        }
        let scale = |alpha: usize| (alpha * n).div_ceil(self.k).max(n / 2 + 1).min(n);
        (n, scale(self.alpha_pref), scale(self.alpha_conf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_parameters_are_named() {
        assert_eq!(Params::default().validate(), Ok(()));
        let p = Params::default();
        let cases = [
            (Params { alpha_pref: 10, ..p }, "alpha_pref = 10 must be more than k/2 = 20/2"),
            (Params { alpha_conf: 14, ..p }, "alpha_conf = 14 must be at least alpha_pref = 15"),
            (Params { alpha_conf: 21, ..p }, "alpha_conf = 21 must be at most k = 20"),
            (Params { concurrent_polls: 21, ..p }, "polls in flight = 21 must be at least 1 and at most beta = 20"),
            (Params { concurrent_polls: 0, ..p }, "polls in flight = 0"),
            (Params { k: 0, ..p }, "k must be at least 1"),
        ];
        for (params, message) in cases {
            let error = params.validate().unwrap_err().to_string();
            assert!(error.starts_with(message), "{error}");
        }
    }

    #[test]
    fn small_sets_poll_everyone_with_thresholds_above_half() {
        let p = Params::default();
        assert_eq!(p.scaled(4), (4, 3, 3));
        assert_eq!(p.scaled(7), (7, 6, 6));
        assert_eq!(p.scaled(100), (20, 15, 15));
        assert_eq!(p.scaled(1), (1, 1, 1));
    }
}
