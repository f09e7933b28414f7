//! Genesis, the state root and its account proofs, staking through unbonding and
//! slashing, equivocation evidence, epochs and governance.

mod common;

use common::*;
use ogpu_chain::receipt::SlashReason;
use ogpu_chain::{BlockError, Event, Genesis, GenesisError, TxError, apply_block, propose_block};
use ogpu_core::block::BlockHeader;
use ogpu_core::tx::{ParamChange, ParamKey, StakeRole, TxBody};
use ogpu_core::vote::{Chit, Evidence};
use ogpu_core::{Address, Amount, Hash, ProposalId};

const GENESIS: &str = r#"
chain_id = "ogpu-devnet"
genesis_time_ms = 0

[params]
min_validator_stake = "1000"
epoch_blocks = 4

[[allocations]]
address = "ADDRESS"
amount = "250.5"

[[validators]]
public_key = "KEY"
stake = "5000"
"#;

fn genesis_text() -> String {
    GENESIS.replace("ADDRESS", &addr(&key("alice")).to_string()).replace("KEY", &key("validator").public().to_string())
}

#[test]
fn genesis_reads_from_toml_and_mints_what_it_allocates() {
    let state = Genesis::from_toml(&genesis_text()).unwrap().into_state().unwrap();
    assert_eq!(state.balance(&addr(&key("alice"))), ogpu("250.5"));
    assert_eq!(state.supply.minted, ogpu("5250.5"));
    assert_eq!(state.params.epoch_blocks, 4);
    assert_eq!(state.active_set.len(), 1);
    check_invariants(&state);
}

#[test]
fn bad_genesis_files_are_refused_with_a_reason() {
    let over_cap = genesis_text().replace("250.5", "21000000");
    assert!(matches!(Genesis::from_toml(&over_cap).unwrap().into_state(), Err(GenesisError::OverCap)));
    let low_stake = genesis_text().replace("\"5000\"", "\"10\"");
    assert!(matches!(
        Genesis::from_toml(&low_stake).unwrap().into_state(),
        Err(GenesisError::StakeBelowMinimum { .. })
    ));
    let bad_address = genesis_text().replace("ogpu1", "ogpu2");
    assert!(matches!(Genesis::from_toml(&bad_address), Err(GenesisError::Parse(_))));
}

#[test]
fn an_account_proof_checks_against_the_state_root_and_nothing_else() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut net = Net::new(&[(&alice, "10"), (&bob, "3")]);
    let transfer = net.tx(&alice, TxBody::Transfer { to: addr(&bob), amount: ogpu("4") });
    net.block(vec![transfer]);
    let root = net.state.root();
    let proof = net.state.prove_account(&addr(&bob)).unwrap();
    assert_eq!(proof.account.balance, ogpu("7"));
    assert!(proof.verify(&root));
    let mut lie = proof.clone();
    lie.account.balance = ogpu("700");
    assert!(!lie.verify(&root), "a different balance does not verify");
    let mut other = proof.clone();
    other.address = addr(&alice);
    assert!(!other.verify(&root), "the proof is for one address");
    assert!(net.state.prove_account(&Address([0; 20])).is_none());
    assert_eq!(net.state.root(), root, "the root is a function of the state");
}

#[test]
fn blocks_that_break_the_header_rules_are_refused_whole() {
    let alice = key("alice");
    let mut net = Net::new(&[(&alice, "10")]);
    let tx = net.tx(&alice, TxBody::Transfer { to: Address([1; 20]), amount: ogpu("1") });
    let (block, _, _) = propose_block(&net.state, &net.validator, 5_000, vec![tx]).unwrap();
    let refuse = |edit: &dyn Fn(&mut BlockHeader), expect: &dyn Fn(&BlockError) -> bool| {
        let mut bad = block.clone();
        edit(&mut bad.signed.header);
        bad.signed = bad.signed.header.clone().sign(&key("validator"));
        let error = apply_block(&net.state, &bad).unwrap_err();
        assert!(expect(&error), "{error}");
    };
    refuse(&|h| h.height += 1, &|e| matches!(e, BlockError::WrongHeight { .. }));
    refuse(&|h| h.parent = Hash::ZERO, &|e| matches!(e, BlockError::WrongParent { .. }));
    refuse(&|h| h.time_ms = 0, &|e| matches!(e, BlockError::TimeNotIncreasing { .. }));
    // Finding 2: a proposer may not stamp its block years ahead (and u64::MAX overflows).
    for far in [1_000 + 10 * 365 * 24 * 3_600_000, u64::MAX] {
        refuse(&|h| h.time_ms = far, &|e| matches!(e, BlockError::TimeTooFarAhead { .. }));
    }
    refuse(&|h| h.state_root = Hash::ZERO, &|e| matches!(e, BlockError::StateRootMismatch { .. }));
    refuse(&|h| h.tx_root = Hash::ZERO, &|e| matches!(e, BlockError::TxRootMismatch));
    refuse(&|h| h.randomness = Hash::ZERO, &|e| matches!(e, BlockError::BadRandomness));
    let mut stranger = block.clone();
    stranger.signed =
        BlockHeader { proposer: key("stranger").public(), ..block.header().clone() }.sign(&key("stranger"));
    assert_eq!(apply_block(&net.state, &stranger).unwrap_err(), BlockError::UnknownProposer);
    let mut forged = block.clone();
    forged.signed.signature.0[5] ^= 1;
    assert_eq!(apply_block(&net.state, &forged).unwrap_err(), BlockError::BadProposerSignature);
    let before = net.state.root();
    net.block(vec![]);
    assert_ne!(net.state.root(), before);
}

#[test]
fn unbonding_stake_stays_slashable_until_withdrawn() {
    let v = key("second-validator");
    let mut net = Net::new(&[(&v, "3000")]);
    net.ok(&v, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("2000") });
    net.ok(&v, TxBody::Unstake { role: StakeRole::Validator, amount: ogpu("2000") });
    let chit = |preferred: &[u8]| Chit {
        chain_id: net.state.chain_id.clone(),
        poller: Address([9; 20]),
        poll: 1,
        height: net.height(),
        preferred: Hash::of_bytes(preferred),
    };
    let evidence = Evidence::DoubleChit(chit(b"a").sign(&v), chit(b"b").sign(&v));
    let reporter = key("validator");
    net.ok(&reporter, TxBody::Evidence { evidence: Box::new(evidence.clone()) });
    let slashed = ogpu("100");
    assert!(net.events().contains(&Event::Slashed {
        who: addr(&v),
        amount: slashed,
        reason: SlashReason::Equivocation
    }));
    assert_eq!(net.state.supply.burned, slashed);
    assert_eq!(net.run(&reporter, TxBody::Evidence { evidence: Box::new(evidence) }), Err(TxError::AlreadyPunished));
    net.advance(10);
    net.ok(&v, TxBody::Withdraw);
    assert_eq!(net.balance(&v), Amount::ogpu(2_900).checked_sub(net.fee().checked_mul(3).unwrap()).unwrap());
}

#[test]
fn epochs_pay_the_reward_pool_by_stake_and_seat_new_validators() {
    let newcomer = key("newcomer");
    let params = ogpu_chain::Params { initial_block_reward: ogpu("1"), epoch_blocks: 4, ..test_params() };
    let mut net = Net::with_params(&[(&newcomer, "20000")], params);
    net.ok(&newcomer, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("10000") });
    assert!(!net.state.active_set.contains_key(&addr(&newcomer)), "not before the epoch ends");
    net.advance_to(4);
    let validator = addr(&net.validator);
    assert!(net.events().contains(&Event::EpochRewards { epoch: 1, paid: ogpu("4") }));
    assert_eq!(net.state.balance(&validator), ogpu("4").checked_add(net.fee()).unwrap(), "4 block rewards and the fee");
    assert!(net.state.active_set.contains_key(&addr(&newcomer)));
    net.advance_to(8);
    let newcomer_reward =
        net.balance(&newcomer).checked_sub(Amount::ogpu(10_000).checked_sub(net.fee()).unwrap()).unwrap();
    assert_eq!(newcomer_reward, ogpu("2"), "half the stake, half of 4 rewards");
}

#[test]
fn a_parameter_changes_when_two_thirds_of_stake_approve() {
    let other = key("other-validator");
    let mut net = Net::new(&[(&other, "6000")]);
    net.ok(&other, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("5000") });
    let change = ParamChange { key: ParamKey::FaultSlashBps, value: 3_000 };
    let bad = ParamChange { key: ParamKey::FaultSlashBps, value: 20_000 };
    assert!(matches!(net.run(&net.validator.clone(), TxBody::Propose { change: bad }), Err(TxError::InvalidParam(_))));
    let propose = net.tx(&net.validator, TxBody::Propose { change });
    let proposal = ProposalId(propose.hash());
    net.block(vec![propose]);
    let voting_ends = net.state.proposals.get(&proposal).unwrap().voting_ends;
    net.advance_to(voting_ends);
    assert!(net.events().contains(&Event::ProposalPassed { proposal }), "{:?}", net.events());
    net.advance_to(1_000);
    assert_eq!(net.state.params.fault_slash_bps, 3_000, "the only validator in the set approved");

    let second = ParamChange { key: ParamKey::FaultSlashBps, value: 4_000 };
    let propose = net.tx(&net.validator, TxBody::Propose { change: second });
    let rejected = ProposalId(propose.hash());
    net.block(vec![propose]);
    let voting_ends = net.state.proposals.get(&rejected).unwrap().voting_ends;
    net.ok(&other, TxBody::Vote { proposal: rejected, approve: false });
    net.advance_to(voting_ends);
    assert!(
        net.events().contains(&Event::ProposalRejected { proposal: rejected }),
        "10000 of 15000 is not over two thirds"
    );
    assert_eq!(net.state.params.fault_slash_bps, 3_000);
}

#[test]
fn a_state_snapshot_round_trips_to_the_same_root() {
    let (alice, provider) = (key("alice"), key("provider"));
    let mut net = Net::new(&[(&alice, "100"), (&provider, "500")]);
    net.provider(&provider, "H100", 80_000, "100");
    net.submit(&alice, auction_spec("5", ogpu_core::spec::VerificationPolicy::None));
    let bytes = net.state.encode_snapshot();
    let restored = ogpu_chain::State::decode_snapshot(&bytes).unwrap();
    assert_eq!(restored.root(), net.state.root());
    assert_eq!(restored.last_block, net.state.last_block);
    assert!(ogpu_chain::State::decode_snapshot(&bytes[..bytes.len() - 1]).is_err());
}

/// Vouches for the transactions it was built with: what a node's mempool does.
struct Checked(Vec<Hash>);

impl ogpu_chain::VerifiedSignatures for Checked {
    fn verified(&self, tx: &Hash) -> bool {
        self.0.contains(tx)
    }
}

#[test]
fn signatures_vouched_for_are_not_rechecked_and_the_rest_still_are() {
    let (alice, bob) = (key("alice"), key("bob"));
    let net = Net::new(&[(&alice, "100"), (&bob, "100")]);
    let good = net.tx(&alice, TxBody::Transfer { to: addr(&bob), amount: ogpu("1") });
    let mut forged = net.tx(&bob, TxBody::Transfer { to: addr(&alice), amount: ogpu("1") });
    forged.signature.0[0] ^= 1;
    let txs = vec![good.clone(), forged];
    let (block, proposed, _) = ogpu_chain::propose_block_with(
        &net.state,
        &net.validator,
        net.state.time_ms + 500,
        txs,
        &Checked(vec![good.hash()]),
    )
    .unwrap();
    let (plain, plain_outcome) = apply_block(&net.state, &block).unwrap();
    let (trusted, trusted_outcome) =
        ogpu_chain::apply_block_with(&net.state, &block, &Checked(vec![good.hash()])).unwrap();
    assert_eq!(plain.root(), proposed.root());
    assert_eq!(trusted.root(), plain.root());
    assert_eq!(trusted_outcome, plain_outcome);
    assert_eq!(plain_outcome.receipts[0].result, Ok(()));
    assert_eq!(plain_outcome.receipts[1].result, Err(TxError::BadSignature), "unvouched signatures are checked");
}

/// Finding 14: a proposer that includes an executed transaction again would overwrite its
/// receipt with `NonceReplayed`; such a block is invalid.
#[test]
fn a_block_that_includes_an_executed_transaction_again_is_invalid() {
    let alice = key("alice");
    let mut net = Net::new(&[(&alice, "10")]);
    let tx = net.tx(&alice, TxBody::Transfer { to: Address([1; 20]), amount: ogpu("1") });
    net.block(vec![tx.clone()]);
    let error = propose_block(&net.state, &net.validator, net.time_ms + 500, vec![tx.clone()]).unwrap_err();
    assert_eq!(error, BlockError::NonceAlreadyUsed { index: 0, tx: tx.hash() });
    let twice = vec![tx.clone(), tx.clone()];
    let mut fresh = Net::new(&[(&alice, "10")]);
    let error = propose_block(&fresh.state, &fresh.validator, fresh.time_ms + 500, twice).unwrap_err();
    assert_eq!(error, BlockError::NonceAlreadyUsed { index: 1, tx: tx.hash() });
    fresh.block(vec![tx]);
}

/// A wallet's balance split: what an account may spend, what its tasks hold in escrow and
/// trust locks, what it has staked and what is unbonding; with the reward pool, the
/// holdings of every account are all the money there is.
#[test]
fn an_accounts_holdings_say_where_its_money_sits() {
    let client = key("holdings-client");
    let provider = key("holdings-provider");
    let mut net = Net::new(&[(&client, "1000"), (&provider, "1000")]);
    net.provider(&provider, "H100", 80_000, "300");
    net.ok(&provider, TxBody::Unstake { role: StakeRole::Provider, amount: ogpu("100") });
    let task = net.submit(&client, auction_spec("2", ogpu_core::spec::VerificationPolicy::None));

    let held = net.state.holdings(&addr(&client)).unwrap();
    let reserved = net.task(task);
    assert_eq!(held.available, net.balance(&client));
    assert_eq!(held.escrow, reserved.escrow.checked_add(reserved.verification_budget).unwrap());
    assert_eq!(held.trust_lock, reserved.client_lock);
    assert!(!held.escrow.is_zero() && !held.trust_lock.is_zero());
    assert_eq!((held.staked, held.unbonding), (Amount::ZERO, Amount::ZERO));

    let held = net.state.holdings(&addr(&provider)).unwrap();
    assert_eq!((held.staked, held.unbonding), (ogpu("200"), ogpu("100")));
    assert_eq!((held.escrow, held.trust_lock), (Amount::ZERO, Amount::ZERO));

    let state = &net.state;
    let owners: std::collections::BTreeSet<Address> = state
        .accounts
        .keys()
        .chain(state.validators.keys())
        .chain(state.providers.keys())
        .chain(state.unbonding.keys().map(|(owner, _)| owner))
        .chain(state.tasks.values().map(|task| &task.client))
        .copied()
        .collect();
    let everyone = owners.iter().map(|owner| state.holdings(owner).unwrap()).fold(state.reward_pool, |sum, held| {
        [held.available, held.escrow, held.trust_lock, held.staked, held.unbonding]
            .into_iter()
            .fold(sum, |sum, part| sum.checked_add(part).unwrap())
    });
    assert_eq!(everyone, state.money_held().unwrap());
}
