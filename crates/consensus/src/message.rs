//! What validators say to each other about consensus.

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_core::Hash;
use ogpu_core::block::SignedHeader;
use ogpu_core::encoding::Canonical;
use ogpu_core::vote::SignedChit;

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Message {
    /// A new block's header, from its proposer.
    Propose(SignedHeader),
    /// "Which block do you prefer?" for the poller's poll `poll` about `height`. It names
    /// the poller's own preferred block, so a validator that missed a proposal learns of
    /// it from the first query and fetches it.
    Query { poll: u64, height: u64, tip: Hash },
    /// The signed answer to a query.
    Chit(SignedChit),
    /// The answer to a query from a node outside the validator set: unsigned, since the
    /// transport already says who sent it and it can be evidence of nothing.
    Vote { poll: u64, height: u64, preferred: Hash },
    /// Asks for a header that a vote named and the asker does not know.
    GetHeader { hash: Hash },
    /// The answer to `GetHeader`.
    Header(SignedHeader),
}

impl Canonical for Message {
    const MAX_ENCODED_LEN: usize = 4 * 1024;
}
