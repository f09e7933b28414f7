//! The engine alone: bad input of every kind is dropped without changing its state, and
//! the engine's basic cycle (build, broadcast, poll, accept) works.

use ogpu_consensus::{Engine, EngineState, Genesis, Input, Message, Output, Params, ValidatorSet, proposer_schedule};
use ogpu_core::block::{BlockHeader, SignedHeader, vrf_input};
use ogpu_core::encoding::Canonical;
use ogpu_core::vote::Chit;
use ogpu_core::{Address, ChainId, Hash, SecretKey, merkle, vrf};
use proptest::prelude::*;

fn chain() -> ChainId {
    "ogpu-test".parse().unwrap()
}

fn keys() -> Vec<SecretKey> {
    (0..4).map(|i| SecretKey::from_name(&format!("v{i}"))).collect()
}

fn set(epoch: u64) -> ValidatorSet {
    ValidatorSet::new(epoch, keys().iter().map(|k| (k.public(), 100)))
}

const GENESIS: Genesis = Genesis { hash: Hash([7; 32]), height: 0, randomness: Hash([9; 32]) };

fn engine(index: usize) -> Engine {
    let params = Params { k: 4, alpha_pref: 3, alpha_conf: 3, beta: 2, concurrent_polls: 1, ..Params::default() };
    Engine::new(params, chain(), keys()[index].clone(), set(0), GENESIS, Hash([index as u8; 32])).unwrap()
}

fn header(key: &SecretKey, height: u64, parent: Hash, parent_randomness: Hash) -> SignedHeader {
    let (randomness, randomness_proof) = vrf::prove(key, &vrf_input(&chain(), height, &parent_randomness));
    BlockHeader {
        chain_id: chain(),
        height,
        parent,
        proposer: key.public(),
        time_ms: 1,
        tx_root: merkle::root(&[]),
        state_root: Hash::ZERO,
        randomness,
        randomness_proof,
    }
    .sign(key)
}

fn addr(i: usize) -> Address {
    Address::of(&keys()[i].public())
}

/// An engine that has built block 1 and has a poll (id 0) out to the other validators.
fn polling() -> (Engine, SignedHeader) {
    let mut e = engine(0);
    let block = header(&keys()[0], 1, GENESIS.hash, GENESIS.randomness);
    let out = e.handle(0, Input::Proposal(block.clone()));
    assert!(out.contains(&Output::Broadcast(Message::Propose(block.clone()))));
    assert!(out.iter().any(|o| matches!(o, Output::Send { message: Message::Query { poll: 0, .. }, .. })));
    (e, block)
}

fn chit(voter: usize, poll: u64, preferred: Hash) -> Message {
    Message::Chit(Chit { chain_id: chain(), poller: addr(0), poll, height: 1, preferred }.sign(&keys()[voter]))
}

/// Feeds `message` and checks that it changed nothing and produced nothing.
fn dropped(engine: &mut Engine, from: Address, message: Message) {
    engine.handle(1, Input::Tick);
    let before: EngineState = engine.state().clone();
    let out = engine.handle(1, Input::Message { from, message });
    assert_eq!(out, vec![], "a dropped message produces nothing");
    assert_eq!(engine.state(), &{ before }, "a dropped message changes nothing");
}

#[test]
fn a_wrongly_signed_chit_is_dropped() {
    let (mut e, block) = polling();
    let Message::Chit(mut forged) = chit(1, 0, block.header.hash()) else { unreachable!() };
    forged.signature.0[0] ^= 1;
    dropped(&mut e, addr(1), Message::Chit(forged));
}

#[test]
fn a_chit_relayed_by_someone_else_or_for_another_poll_is_dropped() {
    let (mut e, block) = polling();
    dropped(&mut e, addr(2), chit(1, 0, block.header.hash()));
    dropped(&mut e, addr(1), chit(1, 99, block.header.hash()));
}

#[test]
fn a_replayed_chit_is_dropped_and_a_conflicting_one_is_evidence() {
    let (mut e, block) = polling();
    let vote = chit(1, 0, block.header.hash());
    e.handle(1, Input::Message { from: addr(1), message: vote.clone() });
    dropped(&mut e, addr(1), vote);
    let out = e.handle(1, Input::Message { from: addr(1), message: chit(1, 0, GENESIS.hash) });
    let evidence = out.iter().find_map(|o| match o {
        Output::Evidence(evidence) => Some((**evidence).clone()),
        _ => None,
    });
    let offence = evidence.expect("two answers to one poll are evidence").check(&chain()).unwrap();
    assert_eq!(offence.offender, keys()[1].public());
}

#[test]
fn out_of_epoch_queries_and_strangers_are_dropped() {
    let mut e = engine(0);
    dropped(&mut e, addr(1), Message::Query { epoch: 5, poll: 0, height: 1, tip: GENESIS.hash });
    let stranger = Address::of(&SecretKey::from_name("stranger").public());
    dropped(&mut e, stranger, Message::Query { epoch: 0, poll: 0, height: 1, tip: GENESIS.hash });
    let answered = e.handle(
        1,
        Input::Message { from: addr(1), message: Message::Query { epoch: 0, poll: 0, height: 1, tip: GENESIS.hash } },
    );
    assert!(matches!(answered.as_slice(), [Output::Send { message: Message::Chit(_), .. }]));
}

/// The validator scheduled first at height 1, and the one scheduled last.
fn first_and_last_proposer() -> (usize, usize) {
    let schedule = proposer_schedule(&set(0), &GENESIS.randomness, 1, 3);
    let index = |a: &Address| (0..4).find(|i| addr(*i) == *a).unwrap();
    (index(&schedule[0]), index(&schedule[2]))
}

#[test]
fn bad_proposals_are_dropped() {
    let (first, last) = first_and_last_proposer();
    let mut e = engine(if first == 0 { 1 } else { 0 });
    let good = header(&keys()[first], 1, GENESIS.hash, GENESIS.randomness);
    let mut forged = good.clone();
    forged.signature.0[3] ^= 1;
    dropped(&mut e, addr(first), Message::Propose(forged));
    let mut other_chain = good.header.clone();
    other_chain.chain_id = "ogpu-other".parse().unwrap();
    dropped(&mut e, addr(first), Message::Propose(other_chain.sign(&keys()[first])));
    let stranger = SecretKey::from_name("stranger");
    dropped(&mut e, addr(first), Message::Propose(header(&stranger, 1, GENESIS.hash, GENESIS.randomness)));
    let early = header(&keys()[last], 1, GENESIS.hash, GENESIS.randomness);
    dropped(&mut e, addr(last), Message::Propose(early));
    let out = e.handle(1, Input::Message { from: addr(first), message: Message::Propose(good.clone()) });
    assert!(out.contains(&Output::Verify(good)), "a proposal that passes the engine's checks goes to the chain");
}

#[test]
fn a_block_the_chain_rejects_never_enters_the_tree() {
    let (first, _) = first_and_last_proposer();
    let mut e = engine(if first == 0 { 1 } else { 0 });
    let block = header(&keys()[first], 1, GENESIS.hash, GENESIS.randomness);
    e.handle(1, Input::Message { from: addr(first), message: Message::Propose(block.clone()) });
    let out = e.handle(2, Input::Verified { hash: block.header.hash(), valid: false });
    assert!(
        !out.iter().any(|o| matches!(o, Output::Send { message: Message::Query { .. }, .. })),
        "nothing to poll on"
    );
    assert_eq!(e.preferred_tip(), GENESIS.hash);
}

#[test]
fn a_block_with_enough_consecutive_votes_is_accepted() {
    let (mut e, block) = polling();
    let hash = block.header.hash();
    let mut accepted = false;
    for poll in 0..2 {
        for voter in 1..4 {
            let out = e.handle(
                2 + poll,
                Input::Message { from: addr(voter as usize), message: chit(voter as usize, poll, hash) },
            );
            accepted |= out.contains(&Output::Accepted(block.clone()));
        }
    }
    assert!(accepted, "beta = 2 polls of 4 votes accept the block");
    assert_eq!(e.last_accepted(), (hash, 1));
}

#[test]
fn a_new_epoch_replaces_the_validator_set() {
    let mut e = engine(0);
    e.handle(1, Input::NewEpoch(set(1)));
    dropped(&mut e, addr(1), Message::Query { epoch: 0, poll: 0, height: 1, tip: GENESIS.hash });
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(message) = Message::decode(&bytes) {
            prop_assert_eq!(message.encode(), bytes);
        }
    }
}

#[test]
fn oversized_and_malformed_messages_fail_to_decode() {
    assert!(Message::decode(&vec![0u8; 5_000]).is_err());
    assert!(Message::decode(&[9]).is_err());
    assert!(Message::decode(&[]).is_err());
}
