//! Signed consensus votes and the evidence of equivocation built from them.
//!
//! A chit (the answer to a consensus poll) carries its voter's signature, so two
//! different answers to the same poll prove misbehaviour, as do two different headers
//! signed by one proposer at one height. The chain slashes on such evidence.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::address::Address;
use crate::block::SignedHeader;
use crate::crypto::{PublicKey, SecretKey, Signature};
use crate::hash::Hash;
use crate::ids::ChainId;

/// An answer to one poll: which block the voter prefers at a height.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Chit {
    pub chain_id: ChainId,
    /// The validator that asked, and its poll number: together they name one poll.
    pub poller: Address,
    pub poll: u64,
    pub height: u64,
    pub preferred: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedChit {
    pub chit: Chit,
    pub voter: PublicKey,
    pub signature: Signature,
}

fn chit_signing_bytes(chit: &Chit) -> Vec<u8> {
    let mut bytes = b"ogpu/chit/v1".to_vec();
    chit.serialize(&mut bytes).expect("writing to a Vec cannot fail");
    bytes
}

impl Chit {
    pub fn sign(self, key: &SecretKey) -> SignedChit {
        let signature = key.sign(&chit_signing_bytes(&self));
        SignedChit { chit: self, voter: key.public(), signature }
    }
}

impl SignedChit {
    pub fn verify(&self) -> Result<(), crate::crypto::SignatureError> {
        self.voter.verify(&chit_signing_bytes(&self.chit), &self.signature)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[allow(clippy::large_enum_variant, reason = "evidence is rare and travels boxed inside transactions")]
pub enum Evidence {
    DoubleProposal(SignedHeader, SignedHeader),
    DoubleChit(SignedChit, SignedChit),
}

/// Who misbehaved, and at what height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offence {
    pub offender: PublicKey,
    pub height: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence is for chain {0}, not this one")]
    WrongChain(ChainId),
    #[error("the two messages are signed by different keys")]
    DifferentSigners,
    #[error("the two messages are not about the same height and poll")]
    DifferentSlots,
    #[error("the two messages are identical, which is no conflict")]
    NoConflict,
    #[error("a signature in the evidence does not verify")]
    BadSignature,
}

impl Evidence {
    /// Checks that the evidence is real and says whom it convicts.
    pub fn check(&self, chain_id: &ChainId) -> Result<Offence, EvidenceError> {
        match self {
            Evidence::DoubleProposal(a, b) => {
                let (ha, hb) = (&a.header, &b.header);
                for chain in [&ha.chain_id, &hb.chain_id] {
                    if chain != chain_id {
                        return Err(EvidenceError::WrongChain(chain.clone()));
                    }
                }
                if ha.proposer != hb.proposer {
                    return Err(EvidenceError::DifferentSigners);
                }
                if ha.height != hb.height {
                    return Err(EvidenceError::DifferentSlots);
                }
                if ha.hash() == hb.hash() {
                    return Err(EvidenceError::NoConflict);
                }
                a.verify().and(b.verify()).map_err(|_| EvidenceError::BadSignature)?;
                Ok(Offence { offender: ha.proposer, height: ha.height })
            }
            Evidence::DoubleChit(a, b) => {
                for chain in [&a.chit.chain_id, &b.chit.chain_id] {
                    if chain != chain_id {
                        return Err(EvidenceError::WrongChain(chain.clone()));
                    }
                }
                if a.voter != b.voter {
                    return Err(EvidenceError::DifferentSigners);
                }
                let slot = |c: &Chit| (c.poller, c.poll, c.height);
                if slot(&a.chit) != slot(&b.chit) {
                    return Err(EvidenceError::DifferentSlots);
                }
                if a.chit.preferred == b.chit.preferred {
                    return Err(EvidenceError::NoConflict);
                }
                a.verify().and(b.verify()).map_err(|_| EvidenceError::BadSignature)?;
                Ok(Offence { offender: a.voter, height: a.chit.height })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chit(preferred: &[u8]) -> Chit {
        Chit {
            chain_id: "ogpu-test".parse().unwrap(),
            poller: Address([1; 20]),
            poll: 4,
            height: 10,
            preferred: Hash::of_bytes(preferred),
        }
    }

    #[test]
    fn two_answers_to_one_poll_convict_the_voter() {
        let key = SecretKey::from_name("v");
        let evidence = Evidence::DoubleChit(chit(b"a").sign(&key), chit(b"b").sign(&key));
        let chain = "ogpu-test".parse().unwrap();
        assert_eq!(evidence.check(&chain), Ok(Offence { offender: key.public(), height: 10 }));
    }

    #[test]
    fn evidence_that_proves_nothing_is_rejected() {
        let key = SecretKey::from_name("v");
        let other = SecretKey::from_name("w");
        let chain = "ogpu-test".parse().unwrap();
        let same = Evidence::DoubleChit(chit(b"a").sign(&key), chit(b"a").sign(&key));
        assert_eq!(same.check(&chain), Err(EvidenceError::NoConflict));
        let two_voters = Evidence::DoubleChit(chit(b"a").sign(&key), chit(b"b").sign(&other));
        assert_eq!(two_voters.check(&chain), Err(EvidenceError::DifferentSigners));
        let mut later = chit(b"b");
        later.poll = 5;
        let two_polls = Evidence::DoubleChit(chit(b"a").sign(&key), later.sign(&key));
        assert_eq!(two_polls.check(&chain), Err(EvidenceError::DifferentSlots));
        let mut forged = chit(b"b").sign(&key);
        forged.signature.0[0] ^= 1;
        let forged = Evidence::DoubleChit(chit(b"a").sign(&key), forged);
        assert_eq!(forged.check(&chain), Err(EvidenceError::BadSignature));
        let elsewhere = Evidence::DoubleChit(chit(b"a").sign(&key), chit(b"b").sign(&key));
        let main = "ogpu-main".parse().unwrap();
        assert!(matches!(elsewhere.check(&main), Err(EvidenceError::WrongChain(_))));
    }
}
