//! Regression tests for bugs found in review, each named after the behaviour it pins down.

mod common;

use common::*;
use ogpu_chain::receipt::{PayReason, SlashReason};
use ogpu_chain::state::{Outcome, Phase, VerifyReason};
use ogpu_chain::{Event, Ineligible, Params, TxError};
use ogpu_core::spec::{Market, Ratio, SpecError, VerificationPolicy, WorkloadKind};
use ogpu_core::tx::{ParamChange, ParamKey, StakeRole, TxBody, VerificationReport};
use ogpu_core::vote::{Chit, Evidence};
use ogpu_core::{Address, Amount, Hash, PoolId, SecretKey, TaskId};

/// Two conflicting chits signed by `signer` for one poll at `height`.
fn double_chit(net: &Net, signer: &SecretKey, height: u64) -> TxBody {
    let chit = |preferred: &[u8]| Chit {
        chain_id: net.state.chain_id.clone(),
        poller: Address([9; 20]),
        poll: 1,
        height,
        preferred: Hash::of_bytes(preferred),
    };
    TxBody::Evidence { evidence: Box::new(Evidence::DoubleChit(chit(b"a").sign(signer), chit(b"b").sign(signer))) }
}

fn create_pool(net: &mut Net, owner: &SecretKey) -> PoolId {
    let create = net.tx(owner, TxBody::CreatePool { spec: pool_spec(ogpu("5")) });
    let pool = PoolId(create.hash());
    assert_eq!(net.block(vec![create]).receipts[0].result, Ok(()));
    pool
}

#[test]
fn evidence_with_height_u64_max_from_a_non_validator_fails_with_unknown_validator_and_does_not_panic() {
    let (reporter, stranger) = (key("reporter"), key("stranger"));
    let mut net = Net::new(&[(&reporter, "10"), (&stranger, "10")]);
    net.advance(20);
    let evidence = double_chit(&net, &stranger, u64::MAX);
    assert_eq!(net.run(&reporter, evidence), Err(TxError::UnknownValidator));
    assert!(net.state.punished.is_empty());
    assert_eq!(net.state.supply.burned, Amount::ZERO);
}

/// A pair of conflicting signatures is equivocation whatever height it names: only the
/// validator's key can make it, so it is punished once, like any other offence, and never
/// overflows the age check.
#[test]
fn evidence_with_height_u64_max_from_a_real_validator_slashes_and_jails_it_once_without_panicking() {
    let reporter = key("reporter");
    let mut net = Net::new(&[(&reporter, "10")]);
    net.advance(20);
    let validator = net.validator.clone();
    let evidence = double_chit(&net, &validator, u64::MAX);
    assert_eq!(net.run(&reporter, evidence.clone()), Ok(()));
    let slashed = ogpu("500");
    assert!(net.events().contains(&Event::Slashed {
        who: addr(&validator),
        amount: slashed,
        reason: SlashReason::Equivocation
    }));
    assert_eq!(net.state.supply.burned, slashed, "equivocation stake is burned");
    let record = net.state.validators.get(&addr(&validator)).unwrap().clone();
    assert_eq!(record.stake, ogpu("9500"));
    assert_eq!(record.jailed_until, net.height() + net.state.params.jail_blocks);
    assert!(net.state.punished.contains(&(validator.public(), u64::MAX)));
    assert_eq!(net.run(&reporter, evidence), Err(TxError::AlreadyPunished));
    assert_eq!(
        net.run(&reporter, double_chit(&net, &validator, u64::MAX - 1)),
        Ok(()),
        "another height, another offence"
    );
}

#[test]
fn a_governance_change_of_pool_commit_blocks_to_a_larger_value_does_not_make_a_late_pool_commit_panic() {
    let (client, owner, p1) = (key("client"), key("owner"), key("p1"));
    let mut net = Net::new(&[(&client, "100"), (&owner, "10"), (&p1, "500")]);
    let pool = create_pool(&mut net, &owner);
    net.provider(&p1, "L4", 24_000, "100");
    net.ok(&p1, TxBody::JoinPool { pool, stake: ogpu("5") });

    let validator = net.validator.clone();
    let change = ParamChange { key: ParamKey::PoolCommitBlocks, value: 1_000 };
    net.ok(&validator, TxBody::Propose { change });
    let voting_ends = net.height() + net.state.params.voting_blocks;
    net.advance_to(voting_ends - 2);
    let mut job = auction_spec("1", VerificationPolicy::None);
    job.workload.kind = WorkloadKind::Onnx;
    job.market = Market::Pool { pool };
    let task = net.submit(&client, job);
    let Phase::Racing { commit_end, reveal_end, .. } = net.task(task).phase else { panic!("not racing") };
    assert_eq!(commit_end, voting_ends, "the race's commit window closes as the vote does");
    net.advance_to(voting_ends);
    assert_eq!(net.state.params.pool_commit_blocks, 1_000, "the change passed");
    assert!(commit_end < 1_000, "subtracting the new window from the old commit end would underflow");

    let late = net.commit_result(&p1, task, claim("late"));
    let receipt = net.block(vec![late]).receipts[0].clone();
    assert_eq!(receipt.result, Err(TxError::OutsideWindow { opens: 0, closes: commit_end, height: commit_end + 1 }));
    assert!(net.height() <= reveal_end && matches!(net.task(task).phase, Phase::Racing { .. }), "the race goes on");
}

#[test]
fn the_client_registered_as_a_provider_is_never_selected_as_verifier_of_its_own_task() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = Net::new(&[(&client, "1000"), (&p1, "500")]);
    net.provider(&client, "H100", 80_000, "100");
    net.provider(&p1, "H100", 80_000, "100");
    let task =
        net.submit(&client, auction_spec("10", VerificationPolicy::SpotCheck { p: Ratio::ONE, tolerance: Ratio(0) }));
    net.auction(task, &[(&p1, "5")]);
    net.ok(&p1, TxBody::StartTask { task });
    let commit = net.commit_result(&p1, task, claim("out"));
    net.block(vec![commit]);
    let reveal = net.reveal_result(&p1, task, claim("out"));
    assert_eq!(net.block(vec![reveal]).receipts[0].result, Ok(()));

    // The client is the only provider with no part in the task: it may not check it.
    assert!(net.events().contains(&Event::VerificationSkipped { task, reason: VerifyReason::SpotCheck }));
    assert!(!net.events().iter().any(|e| matches!(e, Event::VerificationStarted { .. })));
    let Phase::Challengeable { challenge_end } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    net.advance_to(challenge_end);
    assert_eq!(net.task(task).phase, Phase::Done(Outcome::Completed { output: claim("out").output }));
    assert!(
        !net.events().iter().any(|e| matches!(e, Event::Paid { why: PayReason::Verification, .. })),
        "nobody was paid to verify"
    );
}

#[test]
fn a_jailed_validator_that_unstakes_everything_and_restakes_stays_jailed() {
    let (v2, reporter) = (key("v2"), key("reporter"));
    let validator = key("validator");
    let params = Params { epoch_blocks: 5, ..test_params() };
    let mut net = Net::with_params(&[(&validator, "20000"), (&v2, "5000"), (&reporter, "10")], params);
    net.ok(&v2, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("2000") });
    net.advance_to(5);
    assert!(net.state.active_set.contains_key(&addr(&v2)));
    // v2 proposes from here on, so the chain outlives the genesis validator's jail.
    net.validator = v2.clone();

    net.ok(&reporter, double_chit(&net, &validator, net.height()));
    let jailed_until = net.state.validators.get(&addr(&validator)).unwrap().jailed_until;
    assert!(jailed_until > net.height() + 10);
    net.ok(&validator, TxBody::Unstake { role: StakeRole::Validator, amount: ogpu("9500") });
    let record = net.state.validators.get(&addr(&validator)).cloned().expect("the record survives a full unstake");
    assert_eq!((record.stake, record.jailed_until), (Amount::ZERO, jailed_until));
    net.ok(&validator, TxBody::Stake { role: StakeRole::Validator, amount: ogpu("10000") });
    let record = net.state.validators.get(&addr(&validator)).unwrap().clone();
    assert_eq!((record.stake, record.jailed_until), (ogpu("10000"), jailed_until), "restaking does not clear the jail");

    net.advance_to(net.height().next_multiple_of(5));
    assert!(!net.state.active_set.contains_key(&addr(&validator)), "still jailed at the next epoch");
    assert!(net.state.active_set.contains_key(&addr(&v2)));
    assert_eq!(
        net.run(&validator, TxBody::Propose { change: ParamChange { key: ParamKey::VotingBlocks, value: 7 } }),
        Err(TxError::NotAValidator)
    );

    net.advance_to(jailed_until.next_multiple_of(5));
    assert!(net.state.active_set.contains_key(&addr(&validator)), "back once the jail term is over");
}

#[test]
fn a_provider_with_zero_provider_stake_cannot_join_a_pool() {
    let (owner, fresh, quitter, outsider) = (key("owner"), key("fresh"), key("quitter"), key("outsider"));
    let mut net = Net::new(&[(&owner, "10"), (&fresh, "500"), (&quitter, "500"), (&outsider, "500")]);
    let pool = create_pool(&mut net, &owner);
    net.ok(&fresh, TxBody::RegisterProvider { profile: profile("L4", 24_000) });
    net.provider(&quitter, "L4", 24_000, "100");
    net.ok(&quitter, TxBody::Unstake { role: StakeRole::Provider, amount: ogpu("100") });

    let join = TxBody::JoinPool { pool, stake: ogpu("5") };
    assert_eq!(net.run(&fresh, join.clone()), Err(TxError::Ineligible(Ineligible::StakeTooLow)));
    assert_eq!(net.run(&quitter, join.clone()), Err(TxError::Ineligible(Ineligible::StakeTooLow)));
    assert_eq!(net.run(&outsider, join.clone()), Err(TxError::NotAProvider));
    assert!(net.state.pools.get(&pool).unwrap().subscribers.is_empty());
    net.ok(&fresh, TxBody::Stake { role: StakeRole::Provider, amount: ogpu("100") });
    net.ok(&fresh, join);
}

#[test]
fn a_pool_spec_with_min_stake_zero_is_rejected() {
    let owner = key("owner");
    let mut net = Net::new(&[(&owner, "10")]);
    let result = net.run(&owner, TxBody::CreatePool { spec: pool_spec(Amount::ZERO) });
    assert!(
        matches!(&result, Err(TxError::InvalidSpec(SpecError { field: "min_stake", .. }))),
        "a pool nobody needs to stake in: {result:?}"
    );
    assert!(net.state.pools.is_empty());
}

#[test]
fn a_reveal_timeout_with_two_replicas_slashes_the_silent_one_releases_the_revealer_unpaid_and_reauctions() {
    let (client, p1, p2, p3) = (key("client"), key("p1"), key("p2"), key("p3"));
    let mut net = Net::new(&[(&client, "1000"), (&p1, "500"), (&p2, "500"), (&p3, "500")]);
    for p in [&p1, &p2, &p3] {
        net.provider(p, "H100", 80_000, "100");
    }
    let task =
        net.submit(&client, auction_spec("10", VerificationPolicy::Replicate { n: 2, quorum: 2, tolerance: Ratio(0) }));
    net.auction(task, &[(&p1, "4"), (&p2, "5"), (&p3, "6")]);
    let starts = [&p1, &p2].iter().map(|p| net.tx(p, TxBody::StartTask { task })).collect();
    net.block(starts);
    let commits = vec![net.commit_result(&p1, task, claim("out")), net.commit_result(&p2, task, claim("out"))];
    net.block(commits);
    let Phase::Revealing { reveal_end } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    let reveal = net.reveal_result(&p1, task, claim("out"));
    assert_eq!(net.block(vec![reveal]).receipts[0].result, Ok(()));
    net.advance_to(reveal_end - 1);
    let p1_balance = net.balance(&p1);

    net.advance(1);
    assert!(net.events().contains(&Event::Slashed {
        who: addr(&p2),
        amount: ogpu("20"),
        reason: SlashReason::MissedDeadline
    }));
    assert!(!net.events().iter().any(|e| matches!(e, Event::Slashed { who, .. } if *who == addr(&p1))));
    assert!(!net.events().iter().any(|e| matches!(e, Event::Paid { to, .. } if *to == addr(&p1))), "unpaid");
    assert_eq!(net.balance(&p1), p1_balance);
    assert_eq!(net.state.providers.get(&addr(&p1)).unwrap().stake, ogpu("100"), "the revealer is not slashed");

    let after = net.task(task);
    assert!(matches!(after.phase, Phase::Bidding { .. }), "auctioned afresh: {:?}", after.phase);
    assert_eq!(after.rounds, 2);
    assert!(net.events().iter().any(|e| matches!(e, Event::AuctionOpened { task: t, round: 2, .. } if *t == task)));
    assert!(after.executors.is_empty());
    assert!(after.excluded.contains(&addr(&p1)) && after.excluded.contains(&addr(&p2)));
    // The revealed result is public now: its author may not bid again and copy it in.
    let again = net.commit_bid(&p1, task, "4");
    assert_eq!(net.block(vec![again]).receipts[0].result, Err(TxError::Ineligible(Ineligible::Excluded)));
}

#[test]
fn a_task_whose_deadline_blocks_exceeds_unbonding_blocks_fails_with_deadline_too_long() {
    let client = key("client");
    let mut net = Net::new(&[(&client, "1000")]);
    let max = net.state.params.unbonding_blocks;
    let mut spec = auction_spec("10", VerificationPolicy::None);
    spec.deadline_blocks = max + 1;
    assert_eq!(
        net.run(&client, TxBody::SubmitTask { spec: spec.clone() }),
        Err(TxError::DeadlineTooLong { max, got: max + 1 })
    );
    assert!(net.state.tasks.is_empty());
    spec.deadline_blocks = max;
    net.ok(&client, TxBody::SubmitTask { spec });
}

/// Verification may only spend escrow that settlement will not need. Here a dispute is paid,
/// then a challenge while one of two replica slots is vacant; it faults the other replica
/// and the task is auctioned afresh for both slots at the full price. The escrow left must
/// still pay both new executors what they were awarded (or the challenge must be refused).
#[test]
fn executors_awarded_after_paid_verification_rounds_are_paid_their_full_awarded_price() {
    let client = key("client");
    let critic = key("critic");
    let providers: Vec<SecretKey> = (1..=6).map(|i| key(&format!("p{i}"))).collect();
    let mut funded: Vec<(&SecretKey, &str)> = providers.iter().map(|p| (p, "500")).collect();
    funded.extend([(&client, "1000"), (&critic, "50")]);
    let mut net = Net::new(&funded);
    for p in &providers {
        net.provider(p, "H100", 80_000, "100");
    }
    let key_of = |who: &Address| providers.iter().find(|p| addr(p) == *who).unwrap().clone();
    let reports = |net: &mut Net, task: TaskId, verdicts: &[(&SecretKey, bool)]| {
        let verifiers = net.task(task).verifiers.iter().map(|s| key_of(&s.verifier)).collect::<Vec<_>>();
        // One block per subject, every verifier reporting in it, within the report window.
        for (subject, pass) in verdicts {
            let distance_ppm = if *pass { 0 } else { 900_000 };
            let report = VerificationReport { subject: addr(subject), pass: *pass, distance_ppm };
            let txs = verifiers.iter().map(|v| net.tx(v, TxBody::Report { task, report })).collect();
            let receipts = net.block(txs).receipts;
            assert!(receipts.iter().all(|r| r.result.is_ok()), "reports: {receipts:?}");
        }
    };
    let run = |net: &mut Net, task: TaskId, work: &[(&SecretKey, &str)]| {
        let starts = work.iter().map(|(p, _)| net.tx(p, TxBody::StartTask { task })).collect();
        net.block(starts);
        let commits = work.iter().map(|(p, out)| net.commit_result(p, task, claim(out))).collect();
        net.block(commits);
        let reveals = work.iter().map(|(p, out)| net.reveal_result(p, task, claim(out))).collect();
        net.block(reveals);
    };

    let task =
        net.submit(&client, auction_spec("10", VerificationPolicy::Replicate { n: 2, quorum: 2, tolerance: Ratio(0) }));
    let (p1, p2) = (&providers[0], &providers[1]);
    net.auction(task, &[(p1, "5"), (p2, "6")]);
    run(&mut net, task, &[(p1, "a"), (p2, "b")]);
    assert!(matches!(net.task(task).phase, Phase::Verifying { reason: VerifyReason::Dispute, .. }));
    reports(&mut net, task, &[(p1, true), (p2, false)]);
    assert!(matches!(net.task(task).phase, Phase::Challengeable { .. }), "p2 is faulted, p1 stands alone");

    // The challenge either finds verifiers the task can still pay, or is refused; in both
    // cases whoever executes the task in the end must get the price it was awarded.
    match net.run(&critic, TxBody::Challenge { task, bond: ogpu("10") }) {
        Ok(()) => {
            reports(&mut net, task, &[(p1, false)]);
            assert!(matches!(net.task(task).phase, Phase::Bidding { .. }), "both replicas faulted: auctioned afresh");
            let (p3, p4) = (&providers[2], &providers[3]);
            net.auction(task, &[(p3, "5"), (p4, "6")]);
            run(&mut net, task, &[(p3, "a"), (p4, "a")]);
        }
        Err(TxError::NoVerifiersAvailable) => {}
        Err(other) => panic!("the challenge failed with {other}"),
    }
    let escrow = net.task(task).escrow;
    let awarded: Vec<(Address, Amount)> = net.task(task).executors.iter().map(|e| (e.provider, e.price)).collect();
    assert!(!awarded.is_empty());
    let Phase::Challengeable { challenge_end } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    net.advance_to(challenge_end);
    assert!(matches!(net.task(task).phase, Phase::Done(Outcome::Completed { .. })));
    for (executor, price) in awarded {
        let paid: Vec<Amount> = net
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::Paid { to, amount, why: PayReason::Execution, .. } if *to == executor => Some(*amount),
                _ => None,
            })
            .collect();
        assert_eq!(paid, vec![price], "executor {executor} was awarded {price:?}; the escrow left was {escrow:?}");
    }
}
