//! The engine alone: bad input of every kind is dropped without changing its state, and
//! the engine's basic cycle (build, broadcast, poll, accept) works.

use ogpu_consensus::{
    Engine, EngineState, Genesis, Input, Message, Output, Params, SigningRecord, ValidatorSet, proposer_schedule,
};
use ogpu_core::block::{BlockHeader, SignedHeader, vrf_input};
use ogpu_core::encoding::Canonical;
use ogpu_core::vote::Chit;
use ogpu_core::{Address, ChainId, Hash, SecretKey, merkle, vrf};
use proptest::prelude::*;
use std::collections::BTreeSet;

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
fn a_members_query_is_answered_and_its_unknown_tip_fetched() {
    let mut e = engine(0);
    let tip = Hash([8; 32]);
    let out =
        e.handle(1, Input::Message { from: addr(1), message: Message::Query { poll: poll_at(1, 0), height: 1, tip } });
    assert_eq!(chits(&out).len(), 1, "{out:?}");
    let fetch = Output::Send { to: addr(1), message: Message::GetHeader { hash: tip } };
    assert!(out.contains(&fetch), "{out:?}");
}

#[test]
fn strangers_get_unsigned_answers() {
    let mut e = engine(0);
    let stranger = Address::of(&SecretKey::from_name("stranger").public());
    let before = e.state().clone();
    let out = e.handle(
        0,
        Input::Message { from: stranger, message: Message::Query { poll: 0, height: 1, tip: GENESIS.hash } },
    );
    let unsigned = Message::Vote { poll: 0, height: 1, preferred: GENESIS.hash };
    assert_eq!(out, vec![Output::Send { to: stranger, message: unsigned }], "a stranger gets an unsigned answer");
    assert_eq!(e.state(), &before, "and leaves nothing behind");
    let query = Message::Query { poll: poll_at(1, 0), height: 1, tip: GENESIS.hash };
    let answered = e.handle(1, Input::Message { from: addr(1), message: query });
    assert_eq!(chits(&answered).len(), 1, "{answered:?}");
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

/// The ids of the polls an engine sent out.
fn polls_sent(out: &[Output]) -> BTreeSet<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { message: Message::Query { poll, .. }, .. } => Some(*poll),
            _ => None,
        })
        .collect()
}

#[test]
fn a_block_with_enough_consecutive_votes_is_accepted() {
    let mut e = engine(0);
    let block = header(&keys()[0], 1, GENESIS.hash, GENESIS.randomness);
    let hash = block.header.hash();
    let mut polls = polls_sent(&e.handle(0, Input::Proposal(block.clone())));
    let mut accepted = false;
    for round in 0..2 {
        let poll = polls.pop_first().expect("a poll is out");
        for voter in 1..4 {
            let out = e.handle(2 + round, Input::Message { from: addr(voter), message: chit(voter, poll, hash) });
            accepted |= out.contains(&Output::Accepted(block.clone()));
            polls.extend(polls_sent(&out));
        }
    }
    assert!(accepted, "beta = 2 polls of 4 votes accept the block");
    assert_eq!(e.last_accepted(), (hash, 1));
}

/// Finding 16 at the engine: a validator whose record says it asked to build at a height
/// does not ask again after a restart, and it writes the record before it asks.
#[test]
fn a_restarted_proposer_builds_nothing_at_a_height_it_built_before() {
    let (first, _) = first_and_last_proposer();
    let build_requests = |record| {
        let mut e = engine(first);
        let mut out = e.start(0, record);
        out.extend(e.handle(10_000, Input::Tick));
        out
    };
    let fresh = build_requests(SigningRecord::default());
    let build = fresh.iter().position(|o| matches!(o, Output::BuildBlock { height: 1, .. }));
    let persist = fresh.iter().position(|o| matches!(o, Output::Persist(SigningRecord { built_height: 1, .. })));
    assert!(matches!((persist, build), (Some(p), Some(b)) if p < b), "record written before building: {fresh:?}");
    let restarted = build_requests(SigningRecord { built_height: 1, answer_lease_ms: 0 });
    assert!(!restarted.iter().any(|o| matches!(o, Output::BuildBlock { .. })), "{restarted:?}");
}

#[test]
fn a_new_epoch_replaces_the_validator_set() {
    let mut e = engine(0);
    let newcomer = SecretKey::from_name("newcomer");
    let members = [keys()[0].public(), keys()[1].public(), keys()[2].public(), newcomer.public()];
    e.handle(1, Input::NewEpoch(ValidatorSet::new(1, members.iter().map(|key| (*key, 100)))));
    let query = Message::Query { poll: poll_at(1, 0), height: 1, tip: GENESIS.hash };
    let out = e.handle(1, Input::Message { from: Address::of(&newcomer.public()), message: query.clone() });
    assert_eq!(chits(&out).len(), 1, "the newcomer is a member: {out:?}");
    let out = e.handle(1, Input::Message { from: addr(3), message: query });
    let unsigned = matches!(out.as_slice(), [Output::Send { message: Message::Vote { .. }, .. }]);
    assert!(unsigned, "the validator that left gets only an unsigned answer: {out:?}");
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

/// Every chit in `out`.
fn chits(out: &[Output]) -> Vec<ogpu_core::vote::SignedChit> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { message: Message::Chit(chit), .. } => Some(chit.clone()),
            _ => None,
        })
        .collect()
}

/// A poll id as honest pollers number them: the poller's clock in the high bits.
fn poll_at(ms: u64, seq: u64) -> u64 {
    (ms << 16) | seq
}

/// Finding 1: a validator that asks an honest one the same question twice, a block apart,
/// must not come away with two conflicting signed answers.
#[test]
fn an_honest_validator_never_signs_two_conflicting_chits() {
    let (first, _) = first_and_last_proposer();
    let (me, asker) = if first == 1 { (2, 3) } else { (1, if first == 3 { 2 } else { 3 }) };
    let mut e = engine(me);
    e.start(10_000, SigningRecord::default());
    let query = |poll| Message::Query { poll, height: 1, tip: GENESIS.hash };
    let mut signed = chits(&e.handle(10_000, Input::Message { from: addr(asker), message: query(poll_at(10_000, 7)) }));
    assert_eq!(signed.len(), 1, "a first question is answered");

    // The preference moves: block 1 arrives and verifies.
    let block = header(&keys()[first], 1, GENESIS.hash, GENESIS.randomness);
    e.handle(10_100, Input::Message { from: addr(first), message: Message::Propose(block.clone()) });
    e.handle(10_100, Input::Verified { hash: block.header.hash(), valid: true });
    assert_eq!(e.preferred_tip(), block.header.hash());

    let ask =
        |e: &mut Engine, at, poll| chits(&e.handle(at, Input::Message { from: addr(asker), message: query(poll) }));
    signed.extend(ask(&mut e, 10_200, poll_at(10_000, 7)));
    signed.extend(ask(&mut e, 10_300, poll_at(10_200, 0)));
    signed.extend(ask(&mut e, 10_400, poll_at(10_000, 8)));
    signed.extend(ask(&mut e, 10_500, poll_at(10_200, 0)));
    for (i, a) in signed.iter().enumerate() {
        for b in &signed[i + 1..] {
            let evidence = ogpu_core::vote::Evidence::DoubleChit(a.clone(), b.clone());
            assert!(evidence.check(&chain()).is_err(), "conflicting chits signed: {a:?} and {b:?}");
        }
    }
    assert!(signed.len() >= 2, "a new poll is answered");
}

/// Finding 1, across a restart: the engine keeps no answers, so it answers no poll
/// numbered before the lease its record says it may have answered up to.
#[test]
fn a_restarted_validator_answers_no_poll_it_may_have_answered_before() {
    let mut e = engine(1);
    e.start(100_000, SigningRecord { built_height: 0, answer_lease_ms: 100_001 });
    let query = |poll| Message::Query { poll, height: 1, tip: GENESIS.hash };
    for poll in [poll_at(99_000, 0), poll_at(100_000, 0)] {
        let out = e.handle(100_000, Input::Message { from: addr(2), message: query(poll) });
        assert!(chits(&out).is_empty(), "poll numbered at {} ms answered after a start at 100000 ms", poll >> 16);
    }
    let out = e.handle(200_000, Input::Message { from: addr(2), message: query(poll_at(199_000, 0)) });
    assert_eq!(chits(&out).len(), 1, "later polls are answered");
}

/// Finding 2: a proposer may not take every later slot by stamping its block in the future.
#[test]
fn a_proposal_stamped_past_the_receivers_clock_and_drift_is_dropped() {
    let (first, _) = first_and_last_proposer();
    let mut e = engine(if first == 0 { 1 } else { 0 });
    for time_ms in [10 * 365 * 24 * 3_600_000, u64::MAX] {
        let mut future = header(&keys()[first], 1, GENESIS.hash, GENESIS.randomness).header;
        future.time_ms = time_ms;
        dropped(&mut e, addr(first), Message::Propose(future.sign(&keys()[first])));
    }
}

/// Finding 6: signed headers with random parents or at far heights are held within a
/// height window (1024 heights past the highest block in the tree), however many a
/// validator sends.
#[test]
fn headers_with_random_parents_or_far_heights_are_held_within_a_window() {
    let mut e = engine(0);
    let signer = &keys()[2];
    for height in 1..=2_100u64 {
        for twin in 0..2u64 {
            let parent = Hash::of_bytes(&[height.to_le_bytes(), twin.to_le_bytes()].concat());
            let orphan = header(signer, height, parent, GENESIS.randomness);
            e.handle(1, Input::Message { from: addr(2), message: Message::Propose(orphan) });
        }
    }
    let held = e.state().held();
    assert!(held <= 3 * 1_024, "{held} headers and convictions held from one validator's 4200 orphans");
}

/// Finding 17's other half: a node outside the validator set (a follower, or a validator
/// seated in an epoch it has not reached) follows the chain on the validators' unsigned
/// answers, which no one can turn into evidence.
#[test]
fn a_node_outside_the_set_follows_the_chain_on_unsigned_votes() {
    let params = Params { k: 4, alpha_pref: 3, alpha_conf: 3, beta: 2, concurrent_polls: 1, ..Params::default() };
    let follower = SecretKey::from_name("follower");
    let mut e = Engine::new(params, chain(), follower, set(0), GENESIS, Hash([5; 32])).unwrap();
    let (first, _) = first_and_last_proposer();
    let block = header(&keys()[first], 1, GENESIS.hash, GENESIS.randomness);
    let hash = block.header.hash();
    e.handle(0, Input::Message { from: addr(first), message: Message::Propose(block.clone()) });
    let mut polls = polls_sent(&e.handle(0, Input::Verified { hash, valid: true }));
    let mut accepted = false;
    for round in 0..4 {
        let Some(poll) = polls.pop_first() else { break };
        for voter in 0..4 {
            let vote = Message::Vote { poll, height: 1, preferred: hash };
            let out = e.handle(1 + round, Input::Message { from: addr(voter), message: vote });
            accepted |= out.contains(&Output::Accepted(block.clone()));
            polls.extend(polls_sent(&out));
        }
    }
    assert!(accepted, "beta polls of unsigned answers accept the block");
}
