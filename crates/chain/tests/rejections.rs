mod common;
use common::*;

// Every way a transaction is refused, each checked for its exact error and for changing
// nothing but what the fee rules allow: an admission failure changes nothing at all, and
// any other failure charges the fee, consumes the nonce and changes nothing else.

use std::collections::BTreeSet;

use ogpu_chain::state::Phase;
use ogpu_chain::{BlockError, Event, Ineligible, Params, Receipt, State, TxError, propose_block};
use ogpu_core::spec::{Market, Ratio, SpecError, VerificationPolicy, WorkloadKind};
use ogpu_core::tx::{ParamChange, ParamKey, StakeRole, Transaction, TxBody, VerificationReport, bid_commitment};
use ogpu_core::vote::{Chit, Evidence, EvidenceError};
use ogpu_core::{Address, Amount, ChainId, Hash, PoolId, ProposalId, SecretKey, TaskId};

/// The harness parameters with a reveal window of several blocks, so that a bid can be
/// revealed (or refused) in a block where no auction timer fires.
fn params() -> Params {
    Params { bid_reveal_blocks: 3, ..test_params() }
}

fn net(funded: &[(&SecretKey, &str)]) -> Net {
    Net::with_params(funded, params())
}

/// A chain with a client holding 1000 oGPU, providers holding 500 with one H100 each and
/// 100 staked, and any other funded accounts.
fn market(client: &SecretKey, providers: &[&SecretKey], others: &[(&SecretKey, &str)]) -> Net {
    let mut funded = vec![(client, "1000")];
    funded.extend(providers.iter().map(|p| (*p, "500")));
    funded.extend_from_slice(others);
    let mut net = net(&funded);
    for p in providers {
        net.provider(p, "H100", 80_000, "100");
    }
    net
}

fn proposer(net: &Net) -> Address {
    addr(&net.validator)
}

fn pairs<'a, K: Clone + 'a, V: Clone + 'a>(entries: impl Iterator<Item = (&'a K, &'a V)>) -> Vec<(K, V)> {
    entries.map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn items<'a, T: Clone + 'a>(entries: impl Iterator<Item = &'a T>) -> Vec<T> {
    entries.cloned().collect()
}

/// Everything but the accounts, and the fields every block sets (height, time,
/// randomness, last block), is as it was.
fn assert_rest_unchanged(before: &State, after: &State) {
    assert_eq!(after.chain_id, before.chain_id, "chain id");
    assert_eq!(after.params, before.params, "params");
    assert_eq!(after.supply, before.supply, "supply");
    assert_eq!(after.reward_pool, before.reward_pool, "reward pool");
    assert_eq!(pairs(after.validators.iter()), pairs(before.validators.iter()), "validators");
    assert_eq!(pairs(after.active_set.iter()), pairs(before.active_set.iter()), "active set");
    assert_eq!(pairs(after.providers.iter()), pairs(before.providers.iter()), "providers");
    assert_eq!(pairs(after.unbonding.iter()), pairs(before.unbonding.iter()), "unbonding");
    assert_eq!(after.next_unbonding, before.next_unbonding, "next unbonding sequence");
    assert_eq!(pairs(after.pools.iter()), pairs(before.pools.iter()), "pools");
    assert_eq!(pairs(after.tasks.iter()), pairs(before.tasks.iter()), "tasks");
    assert_eq!(items(after.timers.iter()), items(before.timers.iter()), "timers");
    assert_eq!(pairs(after.proposals.iter()), pairs(before.proposals.iter()), "proposals");
    assert_eq!(items(after.punished.iter()), items(before.punished.iter()), "punished offences");
}

/// Nothing at all changed: not the sender, not the proposer, not anything else.
fn assert_nothing_changed(before: &State, after: &State) {
    assert_eq!(pairs(after.accounts.iter()), pairs(before.accounts.iter()), "accounts");
    assert_rest_unchanged(before, after);
}

/// The block took `fee` from `sender` and consumed its nonce, paid the fee to `proposer`,
/// and changed nothing else.
fn assert_only_fee_charged(before: &State, after: &State, sender: Address, fee: Amount, proposer: Address) {
    let (was, now) = (before.account(&sender), after.account(&sender));
    assert_eq!(now.nonce, was.nonce + 1, "the sender's nonce is consumed");
    let sender_balance = if sender == proposer { was.balance } else { was.balance.checked_sub(fee).unwrap() };
    assert_eq!(now.balance, sender_balance, "the sender pays the fee and nothing more");
    if sender != proposer {
        let (was, now) = (before.account(&proposer), after.account(&proposer));
        assert_eq!(now.balance, was.balance.checked_add(fee).unwrap(), "the proposer collects the fee");
        assert_eq!(now.nonce, was.nonce, "the proposer's nonce");
    }
    let addresses: BTreeSet<Address> = before.accounts.keys().chain(after.accounts.keys()).copied().collect();
    for address in addresses.into_iter().filter(|a| *a != sender && *a != proposer) {
        assert_eq!(after.accounts.get(&address), before.accounts.get(&address), "account {address:?}");
    }
    assert_rest_unchanged(before, after);
}

/// Runs `tx` alone in a block; returns the state before it and its receipt.
fn run_alone(net: &mut Net, tx: Transaction) -> (State, Receipt) {
    let before = net.state.clone();
    let receipt = net.block(vec![tx]).receipts[0].clone();
    (before, receipt)
}

/// `tx` is refused at admission with `error`: no fee, no nonce, nothing changed.
fn assert_refused(net: &mut Net, tx: Transaction, error: TxError) {
    assert!(error.is_admission(), "{error:?} is an admission failure");
    let (before, receipt) = run_alone(net, tx);
    assert_eq!(receipt.result, Err(error));
    assert_eq!(receipt.fee_paid, Amount::ZERO, "an admission failure pays no fee");
    assert!(net.events().is_empty(), "no events: {:?}", net.events());
    assert_nothing_changed(&before, &net.state);
}

/// `tx` is admitted and fails with `error`: it pays its fee, consumes its nonce and
/// changes nothing else.
fn assert_tx_fails(net: &mut Net, tx: Transaction, error: TxError) {
    assert!(!error.is_admission(), "{error:?} is not an admission failure");
    let (sender, fee) = (tx.sender_address(), tx.fee);
    let (before, receipt) = run_alone(net, tx);
    assert_eq!(receipt.result, Err(error));
    assert_eq!(receipt.fee_paid, fee, "a failed transaction pays its fee");
    assert!(net.events().is_empty(), "no events: {:?}", net.events());
    assert_only_fee_charged(&before, &net.state, sender, fee, proposer(net));
}

fn assert_fails(net: &mut Net, key: &SecretKey, body: TxBody, error: TxError) {
    let tx = net.tx(key, body);
    assert_tx_fails(net, tx, error);
}

fn ok_tx(net: &mut Net, tx: Transaction) {
    let result = net.block(vec![tx]).receipts[0].result.clone();
    assert_eq!(result, Ok(()));
}

fn transfer(to: &SecretKey, amount: &str) -> TxBody {
    TxBody::Transfer { to: addr(to), amount: ogpu(amount) }
}

fn windows(net: &Net, task: TaskId) -> (u64, u64) {
    match net.task(task).phase {
        Phase::Bidding { commit_end, reveal_end, .. } => (commit_end, reveal_end),
        other => panic!("the task is not taking bids: {other:?}"),
    }
}

/// Runs an auction that `winner` wins alone at `price`; returns once the task executes.
fn award(net: &mut Net, task: TaskId, winner: &SecretKey, price: &str) {
    let commit = net.commit_bid(winner, task, price);
    ok_tx(net, commit);
    let (commit_end, reveal_end) = windows(net, task);
    net.advance_to(commit_end);
    let reveal = net.reveal_bid(winner, task, price);
    ok_tx(net, reveal);
    net.advance_to(reveal_end);
    assert!(matches!(net.task(task).phase, Phase::Executing), "awarded: {:?}", net.task(task).phase);
    assert_eq!(net.task(task).executors[0].provider, addr(winner));
}

fn no_checks() -> VerificationPolicy {
    VerificationPolicy::None
}

// Admission failures.

#[test]
fn a_bad_signature_is_rejected_and_changes_nothing() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = net(&[(&alice, "100")]);
    let mut tx = net.tx(&alice, transfer(&bob, "1"));
    tx.signature.0[0] ^= 1;
    assert_refused(&mut net, tx, TxError::BadSignature);
}

#[test]
fn a_transaction_for_another_chain_is_rejected_and_changes_nothing() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = net(&[(&alice, "100")]);
    let other: ChainId = "ogpu-other".parse().unwrap();
    let tx = Transaction::sign(&alice, other.clone(), 0, net.fee(), transfer(&bob, "1"));
    let expected = TxError::WrongChain { expected: net.state.chain_id.clone(), got: other };
    assert_refused(&mut net, tx, expected);
}

#[test]
fn a_block_carrying_a_used_nonce_is_refused_whole() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = net(&[(&alice, "100")]);
    let tx = net.tx(&alice, transfer(&bob, "1"));
    ok_tx(&mut net, tx.clone());
    let other_body = Transaction::sign(&alice, net.state.chain_id.clone(), 0, net.fee(), transfer(&bob, "2"));
    for replay in [tx, other_body] {
        let hash = replay.hash();
        let error = propose_block(&net.state, &net.validator, net.time_ms + 500, vec![replay]).unwrap_err();
        assert_eq!(error, BlockError::NonceAlreadyUsed { index: 0, tx: hash });
    }
}

#[test]
fn a_skipped_nonce_is_rejected_and_changes_nothing() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = net(&[(&alice, "100")]);
    net.ok(&alice, transfer(&bob, "1"));
    let tx = Transaction::sign(&alice, net.state.chain_id.clone(), 2, net.fee(), transfer(&bob, "1"));
    assert_refused(&mut net, tx, TxError::NonceSkipped { expected: 1, got: 2 });
}

#[test]
fn a_fee_below_the_minimum_is_rejected_and_changes_nothing() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = net(&[(&alice, "100")]);
    let low = Amount::from_base_units(net.fee().base_units() - 1);
    let tx = Transaction::sign(&alice, net.state.chain_id.clone(), 0, low, transfer(&bob, "1"));
    let min = net.fee();
    assert_refused(&mut net, tx, TxError::FeeTooLow { min, got: low });
}

#[test]
fn an_account_that_cannot_pay_the_fee_is_rejected_and_changes_nothing() {
    let (alice, bob, nobody) = (key("alice"), key("bob"), key("nobody"));
    let mut net = net(&[(&alice, "1.001")]);
    let fee = net.fee();

    // An account the chain has never seen.
    let tx = net.tx(&nobody, transfer(&bob, "1"));
    assert_refused(&mut net, tx, TxError::CannotPayFee { balance: Amount::ZERO, fee });
    assert!(!net.state.accounts.contains_key(&addr(&nobody)), "a refused sender gets no account");

    // An account that spent everything it had.
    net.ok(&alice, transfer(&bob, "1"));
    assert_eq!(net.state.account(&addr(&alice)).balance, Amount::ZERO);
    let tx = net.tx(&alice, transfer(&bob, "1"));
    assert_refused(&mut net, tx, TxError::CannotPayFee { balance: Amount::ZERO, fee });
}

// Bank.

#[test]
fn a_transfer_beyond_the_balance_fails_and_only_charges_the_fee() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = net(&[(&alice, "100")]);
    let have = ogpu("100").checked_sub(net.fee()).unwrap();
    assert_fails(&mut net, &alice, transfer(&bob, "1000"), TxError::InsufficientFunds { need: ogpu("1000"), have });
    assert!(!net.state.accounts.contains_key(&addr(&bob)), "the recipient got nothing");
}

#[test]
fn a_zero_amount_transfer_fails_and_only_charges_the_fee() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = net(&[(&alice, "100")]);
    assert_fails(&mut net, &alice, transfer(&bob, "0"), TxError::ZeroAmount);
}

#[test]
fn a_task_whose_reservation_overflows_fails_and_only_charges_the_fee() {
    let client = key("client");
    let mut net = net(&[(&client, "100")]);
    let mut spec = auction_spec("10", no_checks());
    spec.market = Market::Auction { max_price: Amount::from_base_units(u128::MAX), bid_window: 2 };
    assert_fails(&mut net, &client, TxBody::SubmitTask { spec }, TxError::Overflow);
}

// Auctions.

#[test]
fn a_bid_committed_after_the_commit_window_fails_outside_the_window() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let submitted = net.height();
    let (commit_end, reveal_end) = windows(&net, task);
    net.advance_to(commit_end);
    assert!(commit_end + 1 < reveal_end, "the late commit lands in a block without a timer");
    let late = net.commit_bid(&p1, task, "5");
    let expected = TxError::OutsideWindow { opens: submitted, closes: commit_end, height: commit_end + 1 };
    assert_tx_fails(&mut net, late, expected);
}

#[test]
fn a_bid_revealed_before_the_commit_window_closes_fails_outside_the_window() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let commit = net.commit_bid(&p1, task, "5");
    ok_tx(&mut net, commit);
    let (commit_end, reveal_end) = windows(&net, task);
    assert!(net.height() < commit_end);
    let early = net.reveal_bid(&p1, task, "5");
    let expected = TxError::OutsideWindow { opens: commit_end + 1, closes: reveal_end, height: net.height() + 1 };
    assert_tx_fails(&mut net, early, expected);
}

#[test]
fn a_bid_revealed_after_the_reveal_window_fails_because_the_task_has_moved_on() {
    let (client, p1, p2) = (key("client"), key("p1"), key("p2"));
    let mut net = market(&client, &[&p1, &p2], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let commits = vec![net.commit_bid(&p1, task, "5"), net.commit_bid(&p2, task, "4")];
    assert!(net.block(commits).receipts.iter().all(|r| r.result.is_ok()));
    let (commit_end, reveal_end) = windows(&net, task);
    net.advance_to(commit_end);
    let reveal = net.reveal_bid(&p1, task, "5");
    ok_tx(&mut net, reveal);
    net.advance_to(reveal_end);
    assert!(matches!(net.task(task).phase, Phase::Executing), "p1 won: {:?}", net.task(task).phase);

    let late = net.reveal_bid(&p2, task, "4");
    let (before, receipt) = run_alone(&mut net, late.clone());
    assert!(receipt.result.is_err(), "a reveal after the window is refused");
    // The award ended the bidding phase, so the reveal meets the executing phase rather
    // than a closed window.
    assert_eq!(receipt.result, Err(TxError::WrongPhase { phase: "executing" }));
    assert_eq!(receipt.fee_paid, late.fee);
    assert_only_fee_charged(&before, &net.state, addr(&p2), late.fee, proposer(&net));
}

#[test]
fn a_reveal_that_does_not_match_its_commitment_fails() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let commit = net.commit_bid(&p1, task, "5");
    ok_tx(&mut net, commit);
    let (commit_end, _) = windows(&net, task);
    net.advance_to(commit_end);
    let other_price = net.reveal_bid(&p1, task, "6");
    assert_tx_fails(&mut net, other_price, TxError::RevealMismatch);
    let other_salt = net.tx(&p1, TxBody::RevealBid { task, price: ogpu("5"), salt: Hash::of_bytes(b"other salt") });
    assert_tx_fails(&mut net, other_salt, TxError::RevealMismatch);
}

#[test]
fn a_reveal_without_a_commitment_fails() {
    let (client, p1, p2) = (key("client"), key("p1"), key("p2"));
    let mut net = market(&client, &[&p1, &p2], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let commit = net.commit_bid(&p1, task, "5");
    ok_tx(&mut net, commit);
    let (commit_end, _) = windows(&net, task);
    net.advance_to(commit_end);
    let reveal = net.reveal_bid(&p2, task, "5");
    assert_tx_fails(&mut net, reveal, TxError::RevealWithoutCommit);
}

#[test]
fn a_second_bid_commitment_fails() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let commit = net.commit_bid(&p1, task, "5");
    ok_tx(&mut net, commit);
    let (commit_end, _) = windows(&net, task);
    assert!(net.height() < commit_end, "the second commit is inside the window");
    let commitment = bid_commitment(&task, &addr(&p1), ogpu("4"), &salt(&p1));
    let again = net.tx(&p1, TxBody::CommitBid { task, commitment });
    assert_tx_fails(&mut net, again, TxError::DoubleCommit);
}

#[test]
fn a_bid_revealed_above_the_maximum_price_fails() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let commit = net.commit_bid(&p1, task, "11");
    ok_tx(&mut net, commit);
    let (commit_end, _) = windows(&net, task);
    net.advance_to(commit_end);
    let reveal = net.reveal_bid(&p1, task, "11");
    assert_tx_fails(&mut net, reveal, TxError::PriceAboveMax { price: ogpu("11"), max: ogpu("10") });
}

#[test]
fn a_bid_from_a_provider_with_too_little_vram_is_ineligible() {
    let (client, small) = (key("client"), key("small"));
    let mut net = net(&[(&client, "1000"), (&small, "500")]);
    net.provider(&small, "T4", 8_000, "100");
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let bid = net.commit_bid(&small, task, "5");
    assert_tx_fails(&mut net, bid, TxError::Ineligible(Ineligible::TooLittleVram));
}

// Cancelling.

#[test]
fn only_the_client_may_cancel_a_task() {
    let (client, stranger) = (key("client"), key("stranger"));
    let mut net = market(&client, &[], &[(&stranger, "10")]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    assert_fails(&mut net, &stranger, TxBody::CancelTask { task }, TxError::NotTheClient);
}

#[test]
fn a_task_cannot_be_cancelled_after_its_award() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    award(&mut net, task, &p1, "5");
    assert_fails(&mut net, &client, TxBody::CancelTask { task }, TxError::NotCancellable { phase: "executing" });
}

/// Finding 10: a client could let providers seal bids (holding their slots for the bid
/// window) and then cancel for free. Once a bid is committed, the task is theirs to bid on.
#[test]
fn a_task_cannot_be_cancelled_once_a_bid_is_sealed() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let bid = net.commit_bid(&p1, task, "5");
    ok_tx(&mut net, bid);
    assert_fails(&mut net, &client, TxBody::CancelTask { task }, TxError::NotCancellable { phase: "bidding" });
}

#[test]
fn an_ended_task_cannot_be_cancelled_again() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    net.ok(&client, TxBody::CancelTask { task });
    assert_fails(&mut net, &client, TxBody::CancelTask { task }, TxError::NotCancellable { phase: "done" });
}

// Topping up.

#[test]
fn a_top_up_must_come_from_the_client_and_raise_the_cap() {
    let (client, stranger, p1) = (key("client"), key("stranger"), key("p1"));
    let mut net = market(&client, &[&p1], &[(&stranger, "100")]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    let raise = |to: &str| TxBody::TopUpTask { task, max_price: ogpu(to) };
    assert_fails(&mut net, &stranger, raise("20"), TxError::NotTheClient);
    let not_higher = |got: &str| TxError::TopUpNotHigher { cap: ogpu("10"), got: ogpu(got) };
    assert_fails(&mut net, &client, raise("10"), not_higher("10"));
    assert_fails(&mut net, &client, raise("9"), not_higher("9"));
    // 1000 oGPU raises the reservation by 1257.3 (escrow 1020, verification 150, lock
    // 100, less the 12.7 held): more than the client has left.
    let have = net.balance(&client).checked_sub(net.fee()).unwrap();
    let need = ogpu("1257.3");
    assert_fails(&mut net, &client, raise("1000"), TxError::InsufficientFunds { need, have });
}

#[test]
fn a_top_up_is_refused_after_the_award_and_for_pool_jobs() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    award(&mut net, task, &p1, "5");
    let raise = TxBody::TopUpTask { task, max_price: ogpu("20") };
    assert_fails(&mut net, &client, raise, TxError::WrongPhase { phase: "executing" });

    let create = net.tx(&client, TxBody::CreatePool { spec: pool_spec(ogpu("10")) });
    let pool = PoolId(create.hash());
    ok_tx(&mut net, create);
    let mut job = auction_spec("1", no_checks());
    job.workload.kind = WorkloadKind::Onnx;
    job.market = Market::Pool { pool };
    let job = net.submit(&client, job);
    assert_fails(&mut net, &client, TxBody::TopUpTask { task: job, max_price: ogpu("2") }, TxError::NotAnAuction);
}

#[test]
fn a_transaction_about_an_unknown_task_fails() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let unknown = TaskId(Hash::of_bytes(b"no such task"));
    assert_fails(&mut net, &client, TxBody::CancelTask { task: unknown }, TxError::UnknownTask(unknown.0));
    let bid = net.commit_bid(&p1, unknown, "5");
    assert_tx_fails(&mut net, bid, TxError::UnknownTask(unknown.0));
}

#[test]
fn a_task_with_an_invalid_spec_fails() {
    let client = key("client");
    let mut net = net(&[(&client, "100")]);
    let mut spec = auction_spec("10", no_checks());
    spec.market = Market::Auction { max_price: ogpu("10"), bid_window: 0 };
    let error = SpecError { field: "market.bid_window", problem: "must be 1 to 1000 blocks".into() };
    assert_fails(&mut net, &client, TxBody::SubmitTask { spec }, TxError::InvalidSpec(error));
}

// Execution.

#[test]
fn starting_a_task_one_was_not_awarded_fails() {
    let (client, p1, p2) = (key("client"), key("p1"), key("p2"));
    let mut net = market(&client, &[&p1, &p2], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    award(&mut net, task, &p1, "5");
    assert_fails(&mut net, &p2, TxBody::StartTask { task }, TxError::NotAnExecutor);
}

#[test]
fn committing_a_result_before_starting_fails() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    award(&mut net, task, &p1, "5");
    let commit = net.commit_result(&p1, task, claim("early"));
    assert_tx_fails(&mut net, commit, TxError::NotStarted);
}

#[test]
fn a_second_result_commitment_fails() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &[&p1], &[]);
    let task = net.submit(&client, auction_spec("10", no_checks()));
    award(&mut net, task, &p1, "5");
    net.ok(&p1, TxBody::StartTask { task });
    let commit = net.commit_result(&p1, task, claim("first"));
    ok_tx(&mut net, commit);
    let Phase::Revealing { reveal_end } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    assert!(net.height() + 1 < reveal_end, "the second commit lands in a block without a timer");
    let again = net.commit_result(&p1, task, claim("second"));
    assert_tx_fails(&mut net, again, TxError::DoubleCommit);
}

// Verification.

#[test]
fn a_report_from_a_provider_that_was_not_selected_fails() {
    let (client, p1, p2, p3) = (key("client"), key("p1"), key("p2"), key("p3"));
    let mut net = market(&client, &[&p1, &p2, &p3], &[]);
    let task =
        net.submit(&client, auction_spec("10", VerificationPolicy::SpotCheck { p: Ratio::ONE, tolerance: Ratio(0) }));
    award(&mut net, task, &p1, "5");
    net.ok(&p1, TxBody::StartTask { task });
    let commit = net.commit_result(&p1, task, claim("answer"));
    ok_tx(&mut net, commit);
    let reveal = net.reveal_result(&p1, task, claim("answer"));
    ok_tx(&mut net, reveal);
    let verifiers = net
        .events()
        .iter()
        .find_map(|e| match e {
            Event::VerificationStarted { verifiers, .. } => Some(verifiers.clone()),
            _ => None,
        })
        .expect("a spot check with p = 1 always calls a verifier");
    assert_eq!(verifiers.len(), 1);
    let Phase::Verifying { report_end, .. } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    assert!(net.height() + 2 < report_end, "both reports land in blocks without a timer");

    let bystander = if verifiers[0] == addr(&p2) { &p3 } else { &p2 };
    let report = VerificationReport { subject: addr(&p1), pass: false, distance_ppm: 900_000 };
    assert_fails(&mut net, bystander, TxBody::Report { task, report }, TxError::NotSelectedVerifier);
    assert_fails(&mut net, &client, TxBody::Report { task, report }, TxError::NotSelectedVerifier);
}

// Staking.

#[test]
fn staking_as_a_provider_without_registering_fails() {
    let someone = key("someone");
    let mut net = net(&[(&someone, "500")]);
    let body = TxBody::Stake { role: StakeRole::Provider, amount: ogpu("100") };
    assert_fails(&mut net, &someone, body, TxError::NotAProvider);
}

#[test]
fn staking_below_the_validator_minimum_fails() {
    let hopeful = key("hopeful");
    let mut net = net(&[(&hopeful, "5000")]);
    let body = TxBody::Stake { role: StakeRole::Validator, amount: ogpu("500") };
    assert_fails(&mut net, &hopeful, body, TxError::StakeBelowMinimum { min: ogpu("1000"), would_be: ogpu("500") });
}

#[test]
fn unstaking_to_a_remainder_below_the_minimum_fails() {
    let v2 = key("v2");
    let mut net = net(&[(&v2, "5000")]);
    net.ok(&v2, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("1500") });
    let body = TxBody::Unstake { role: StakeRole::Validator, amount: ogpu("1000") };
    assert_fails(&mut net, &v2, body, TxError::StakeBelowMinimum { min: ogpu("1000"), would_be: ogpu("500") });
}

#[test]
fn withdrawing_during_unbonding_fails_until_the_period_has_passed() {
    let v2 = key("v2");
    let mut net = net(&[(&v2, "5000")]);
    net.ok(&v2, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("1000") });
    net.ok(&v2, TxBody::Unstake { role: StakeRole::Validator, amount: ogpu("1000") });
    let release = net.height() + net.state.params.unbonding_blocks;

    assert_fails(&mut net, &v2, TxBody::Withdraw, TxError::NothingToWithdraw { next_release: Some(release) });
    net.advance_to(release - 2);
    assert_fails(&mut net, &v2, TxBody::Withdraw, TxError::NothingToWithdraw { next_release: Some(release) });
    assert_eq!(net.height(), release - 1);

    let before = net.balance(&v2);
    net.ok(&v2, TxBody::Withdraw);
    assert_eq!(net.height(), release);
    assert_eq!(net.balance(&v2), before.checked_add(ogpu("1000")).unwrap().checked_sub(net.fee()).unwrap());
    assert!(net.state.unbonding.is_empty(), "the unbonding entry is paid out");
    assert_fails(&mut net, &v2, TxBody::Withdraw, TxError::NothingToWithdraw { next_release: None });
}

#[test]
fn evidence_that_proves_nothing_fails() {
    let (reporter, voter) = (key("reporter"), key("voter"));
    let mut net = net(&[(&reporter, "10")]);
    let chit = Chit {
        chain_id: net.state.chain_id.clone(),
        poller: addr(&net.validator),
        poll: 1,
        height: 1,
        preferred: Hash::of_bytes(b"block"),
    };
    let evidence = Box::new(Evidence::DoubleChit(chit.clone().sign(&voter), chit.sign(&voter)));
    let body = TxBody::Evidence { evidence };
    assert_fails(&mut net, &reporter, body, TxError::Evidence(EvidenceError::NoConflict));
}

// Governance.

fn min_fee_change() -> ParamChange {
    ParamChange { key: ParamKey::MinFee, value: ogpu("0.002").base_units() }
}

#[test]
fn a_proposal_from_a_non_validator_fails() {
    let someone = key("someone");
    let mut net = net(&[(&someone, "10")]);
    assert_fails(&mut net, &someone, TxBody::Propose { change: min_fee_change() }, TxError::NotAValidator);
}

#[test]
fn voting_twice_on_a_proposal_fails() {
    let validator = key("validator");
    let mut net = net(&[(&validator, "10")]);
    let propose = net.tx(&validator, TxBody::Propose { change: min_fee_change() });
    let proposal = ProposalId(propose.hash());
    ok_tx(&mut net, propose);
    let voting_ends = net.state.proposals.get(&proposal).expect("the proposal is open").voting_ends;
    assert!(net.height() + 3 < voting_ends, "every vote lands before the vote closes");

    // The proposer's own vote was counted when it proposed; it cannot vote again, not even
    // to change its mind. It is also the block proposer, so the fee goes from it to itself.
    assert_fails(&mut net, &validator, TxBody::Vote { proposal, approve: false }, TxError::AlreadyVoted);
    assert_eq!(net.state.proposals.get(&proposal).unwrap().votes.get(&addr(&validator)), Some(&true));
}

#[test]
fn a_validator_outside_the_active_set_cannot_vote_yet() {
    let (v2, validator) = (key("v2"), key("validator"));
    let mut net = net(&[(&v2, "2000"), (&validator, "10")]);
    net.ok(&v2, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("1000") });
    let propose = net.tx(&validator, TxBody::Propose { change: min_fee_change() });
    let proposal = ProposalId(propose.hash());
    ok_tx(&mut net, propose);
    // Staked, but the set changes only at the next epoch boundary.
    assert_fails(&mut net, &v2, TxBody::Vote { proposal, approve: true }, TxError::NotAValidator);
}

// Blocks.

#[test]
fn a_failed_transaction_inside_a_busy_block_leaves_its_neighbours_applied() {
    let (alice, bob, carol, dave) = (key("alice"), key("bob"), key("carol"), key("dave"));
    let mut net = net(&[(&alice, "100"), (&bob, "10"), (&carol, "100")]);
    let fee = net.fee();
    let txs = vec![
        net.tx(&alice, transfer(&dave, "5")),
        net.tx(&bob, transfer(&dave, "50")),
        net.tx(&carol, transfer(&dave, "7")),
    ];
    let before = net.state.clone();
    let outcome = net.block(txs);
    let results: Vec<_> = outcome.receipts.iter().map(|r| r.result.clone()).collect();
    let bob_has = ogpu("10").checked_sub(fee).unwrap();
    assert_eq!(results, vec![Ok(()), Err(TxError::InsufficientFunds { need: ogpu("50"), have: bob_has }), Ok(())]);
    assert!(outcome.receipts.iter().all(|r| r.fee_paid == fee), "every admitted transaction pays its fee");

    let after = &net.state;
    let spent = |total: &str, sent: &str| ogpu(total).checked_sub(ogpu(sent)).unwrap().checked_sub(fee).unwrap();
    assert_eq!(after.account(&addr(&alice)).balance, spent("100", "5"));
    assert_eq!(after.account(&addr(&bob)).balance, spent("10", "0"));
    assert_eq!(after.account(&addr(&carol)).balance, spent("100", "7"));
    assert_eq!(after.account(&addr(&dave)).balance, ogpu("12"));
    for sender in [&alice, &bob, &carol] {
        assert_eq!(after.account(&addr(sender)).nonce, 1, "every admitted transaction consumes its nonce");
    }
    let collected = fee.checked_mul(3).unwrap();
    let proposer_before = before.account(&proposer(&net)).balance;
    assert_eq!(after.account(&proposer(&net)).balance, proposer_before.checked_add(collected).unwrap());
    assert_rest_unchanged(&before, after);
}
