//! One Snowball instance: the choice among the children of one block.
//!
//! Preference follows the child with the most polls that reached `alpha_pref`; confidence
//! counts consecutive polls in which one child reached `alpha_conf`; `beta` of those in a
//! row for the preferred child decides it.

use ogpu_core::Hash;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snowball {
    /// `(child, its rank, polls it won with at least alpha_pref votes)`, in arrival order.
    strength: Vec<(Hash, Rank, u32)>,
    preference: Option<Hash>,
    last_winner: Option<Hash>,
    confidence: u32,
    /// Polls in a row in which no child reached alpha_pref.
    stalled: u32,
}

/// How children rank before any poll has spoken: by the proposer's slot in the schedule,
/// then by hash. Every validator ranks them alike, so conflicting proposals that arrive
/// in different orders do not split the network from the start.
pub type Rank = (u64, Hash);

impl Snowball {
    pub fn add_child(&mut self, child: Hash, rank: Rank) {
        if self.strength.iter().any(|(c, _, _)| *c == child) {
            return;
        }
        self.strength.push((child, rank, 0));
        let untested = self.strength.iter().all(|(_, _, won)| *won == 0);
        if untested {
            self.preference = self.strength.iter().min_by_key(|(_, rank, _)| *rank).map(|(c, _, _)| *c);
        }
    }

    pub fn preference(&self) -> Option<Hash> {
        self.preference
    }

    #[cfg(test)]
    pub fn confidence(&self) -> u32 {
        self.confidence
    }

    /// Records a poll in which `choice` drew `votes` votes, the most of any child. After
    /// `stall_limit` polls in a row in which no child reached alpha_pref, preference moves
    /// to the plurality child: with every validator sampled, a split that no poll can
    /// break would otherwise last forever. Acceptance still needs beta polls in a row at
    /// alpha_conf, so this changes what is preferred, never what is decided.
    pub fn record(&mut self, choice: Hash, votes: usize, thresholds: (usize, usize), stall_limit: u32) {
        let (alpha_pref, alpha_conf) = thresholds;
        if votes < alpha_pref {
            self.record_unsuccessful();
            self.stalled += 1;
            if self.stalled >= stall_limit && votes > 0 && self.strength.iter().any(|(c, _, _)| *c == choice) {
                self.preference = Some(choice);
                self.stalled = 0;
            }
            return;
        }
        self.stalled = 0;
        let Some(won) = self.strength.iter_mut().find(|(c, _, _)| *c == choice) else {
            self.record_unsuccessful();
            return;
        };
        won.2 += 1;
        let won = won.2;
        let preferred =
            self.preference.and_then(|p| self.strength.iter().find(|(c, _, _)| *c == p)).map_or(0, |(_, _, s)| *s);
        if won > preferred {
            self.preference = Some(choice);
        }
        if votes < alpha_conf {
            self.confidence = 0;
        } else if self.last_winner == Some(choice) {
            self.confidence += 1;
        } else {
            self.confidence = 1;
        }
        self.last_winner = Some(choice);
    }

    pub fn record_unsuccessful(&mut self) {
        self.confidence = 0;
    }

    /// The child decided by `beta` consecutive successful polls, if any.
    pub fn decided(&self, beta: u32) -> Option<Hash> {
        (self.confidence >= beta && self.last_winner == self.preference).then_some(self.preference).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> Hash {
        Hash([n; 32])
    }

    const T: (usize, usize) = (3, 4);

    fn two_children() -> Snowball {
        let mut s = Snowball::default();
        s.add_child(h(1), (0, h(1)));
        s.add_child(h(2), (1, h(2)));
        s
    }

    #[test]
    fn beta_consecutive_successes_decide_and_a_miss_resets() {
        let mut s = two_children();
        for _ in 0..2 {
            s.record(h(1), 4, T, 100);
        }
        s.record(h(1), 2, T, 100);
        assert_eq!(s.confidence(), 0, "an unsuccessful poll resets confidence");
        for _ in 0..3 {
            s.record(h(1), 4, T, 100);
        }
        assert_eq!(s.decided(3), Some(h(1)));
    }

    #[test]
    fn preference_follows_the_most_successful_child() {
        let mut s = two_children();
        assert_eq!(s.preference(), Some(h(1)), "the best-ranked child");
        s.record(h(2), 3, T, 100);
        assert_eq!(s.preference(), Some(h(2)));
        assert_eq!(s.confidence(), 0, "alpha_pref but not alpha_conf");
        s.record(h(1), 4, T, 100);
        assert_eq!(s.preference(), Some(h(2)), "a tie keeps the preference");
        s.record(h(1), 4, T, 100);
        assert_eq!(s.preference(), Some(h(1)));
        assert_eq!(s.decided(2), Some(h(1)));
    }

    #[test]
    fn a_better_ranked_late_child_wins_only_before_any_poll() {
        let mut s = Snowball::default();
        s.add_child(h(5), (2, h(5)));
        s.add_child(h(4), (0, h(4)));
        assert_eq!(s.preference(), Some(h(4)), "ranks, not arrival order");
        s.record(h(5), 3, T, 100);
        s.add_child(h(3), (0, h(0)));
        assert_eq!(s.preference(), Some(h(5)), "polls have spoken");
    }

    #[test]
    fn a_long_stall_moves_preference_to_the_plurality() {
        let mut s = two_children();
        s.record(h(2), 2, T, 3);
        s.record(h(2), 2, T, 3);
        assert_eq!(s.preference(), Some(h(1)));
        s.record(h(2), 2, T, 3);
        assert_eq!(s.preference(), Some(h(2)));
        assert_eq!(s.decided(1), None, "a stall never decides");
    }
}
