//! The bootstrap peers a node keeps dialing while it is not connected to them.
//!
//! A node dials its bootstrap peers once as it starts. One that is not listening yet (a
//! devnet's validators start together; a peer restarts) would never be tried again, and
//! a validator that no one reaches cannot be polled: three validators with one link
//! missing finalize nothing. Attempts back off from a second to a minute, so a peer gone
//! for good costs one dial a minute.

use std::collections::BTreeMap;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

const FIRST_WAIT_MS: u64 = 1_000;
const LONGEST_WAIT_MS: u64 = 60_000;

pub struct Redial {
    peers: BTreeMap<PeerId, Attempt>,
}

struct Attempt {
    address: Multiaddr,
    due_ms: u64,
    wait_ms: u64,
}

impl Redial {
    /// The bootstrap addresses that name their peer (`/p2p/...`); an address that does
    /// not cannot be told apart from a stranger's and is dialed once only.
    pub fn new<'a>(bootstrap: impl IntoIterator<Item = &'a Multiaddr>, now_ms: u64) -> Self {
        let peers = bootstrap
            .into_iter()
            .filter_map(|address| match address.iter().last() {
                Some(Protocol::P2p(peer)) => Some((
                    peer,
                    Attempt { address: address.clone(), due_ms: now_ms + FIRST_WAIT_MS, wait_ms: FIRST_WAIT_MS },
                )),
                _ => None,
            })
            .collect();
        Redial { peers }
    }

    /// The peers to dial now: those whose wait is over, less those `skip` names (connected,
    /// or barred). Each waits twice as long before its next attempt.
    pub fn due(&mut self, now_ms: u64, skip: impl Fn(&PeerId) -> bool) -> Vec<(PeerId, Multiaddr)> {
        let mut due = Vec::new();
        for (peer, attempt) in &mut self.peers {
            if attempt.due_ms <= now_ms && !skip(peer) {
                due.push((*peer, attempt.address.clone()));
                attempt.due_ms = now_ms + attempt.wait_ms;
                attempt.wait_ms = (attempt.wait_ms * 2).min(LONGEST_WAIT_MS);
            }
        }
        due
    }

    /// A connection to `peer`: once it is lost, dialing starts again at the first wait.
    pub fn connected(&mut self, peer: &PeerId, now_ms: u64) {
        if let Some(attempt) = self.peers.get_mut(peer) {
            attempt.due_ms = now_ms + FIRST_WAIT_MS;
            attempt.wait_ms = FIRST_WAIT_MS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(peer: PeerId) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}").parse().unwrap()
    }

    fn due_times(redial: &mut Redial, until_ms: u64, skip: impl Fn(&PeerId) -> bool + Copy) -> Vec<u64> {
        (0..=until_ms).step_by(500).filter(|now| !redial.due(*now, skip).is_empty()).collect()
    }

    #[test]
    fn an_unanswering_peer_is_dialed_with_a_doubling_wait_up_to_a_minute() {
        let peer = PeerId::random();
        let mut redial = Redial::new(&[address(peer)], 0);
        let times = due_times(&mut redial, 300_000, |_| false);
        assert_eq!(times[..7], [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000]);
        assert_eq!(times[7..], [124_000, 184_000, 244_000]);
    }

    #[test]
    fn a_connected_peer_is_not_dialed_and_a_lost_one_starts_again_at_a_second() {
        let peer = PeerId::random();
        let mut redial = Redial::new(&[address(peer)], 0);
        assert_eq!(due_times(&mut redial, 20_000, |_| false), [1_000, 2_000, 4_000, 8_000, 16_000]);
        redial.connected(&peer, 20_000);
        assert!(due_times(&mut redial, 100_000, |_| true).is_empty());
        assert_eq!(redial.due(100_000, |_| false), [(peer, address(peer))]);
        assert_eq!(redial.due(101_000, |_| false), [(peer, address(peer))]);
    }

    #[test]
    fn an_address_without_its_peer_is_not_dialed_again() {
        let mut redial = Redial::new(&["/ip4/127.0.0.1/tcp/4001".parse().unwrap()], 0);
        assert!(due_times(&mut redial, 100_000, |_| false).is_empty());
    }
}
