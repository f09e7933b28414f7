//! Whole task lifecycles, with every balance checked to the base unit.

mod common;

use common::*;
use ogpu_chain::receipt::{PayReason, SlashReason};
use ogpu_chain::state::{Outcome, Phase, VerifyReason};
use ogpu_chain::{Event, TxError};
use ogpu_core::spec::{
    Limits, Market, PoolSpec, Ratio, Requirements, TaskSpec, Training, VerificationPolicy, Workload, WorkloadKind,
};
use ogpu_core::tx::{ResultClaim, StakeRole, Trace, Transaction, TxBody, VerificationReport};
use ogpu_core::{Address, Amount, BlobHash, Hash, PoolId, SecretKey, TaskId};

fn fees(net: &Net, count: u128) -> Amount {
    net.fee().checked_mul(count).unwrap()
}

fn minus(total: &str, parts: &[Amount]) -> Amount {
    parts.iter().fold(ogpu(total), |left, part| left.checked_sub(*part).unwrap())
}

fn plus(base: Amount, parts: &[Amount]) -> Amount {
    parts.iter().fold(base, |sum, part| sum.checked_add(*part).unwrap())
}

fn selected_verifiers(net: &Net) -> Vec<Address> {
    net.events()
        .iter()
        .find_map(|e| match e {
            Event::VerificationStarted { verifiers, .. } => Some(verifiers.clone()),
            _ => None,
        })
        .expect("a verification round started")
}

fn execute(net: &mut Net, task: TaskId, provider: &SecretKey, claim: ResultClaim) {
    net.ok(provider, TxBody::StartTask { task });
    let commit = net.commit_result(provider, task, claim);
    net.block(vec![commit]);
    let reveal = net.reveal_result(provider, task, claim);
    assert_eq!(net.block(vec![reveal]).receipts[0].result, Ok(()));
}

fn report(net: &mut Net, verifier: &SecretKey, task: TaskId, subject: &SecretKey, pass: bool) {
    let report = VerificationReport { subject: addr(subject), pass, distance_ppm: if pass { 10 } else { 900_000 } };
    net.ok(verifier, TxBody::Report { task, report });
}

fn finish(net: &mut Net, task: TaskId) -> Outcome {
    let Phase::Challengeable { challenge_end } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    net.advance_to(challenge_end);
    match net.task(task).phase {
        Phase::Done(outcome) => outcome,
        other => panic!("task did not end: {other:?}"),
    }
}

#[test]
fn a_training_task_goes_through_auction_proof_of_learning_and_settlement() {
    let (client, p1, p2, p3) = (key("client"), key("p1"), key("p2"), key("p3"));
    let mut net = Net::new(&[(&client, "1000"), (&p1, "500"), (&p2, "500"), (&p3, "500")]);
    for p in [&p1, &p2, &p3] {
        net.provider(p, "H100", 80_000, "100");
    }
    let policy = VerificationPolicy::ProofOfLearning { segments: 1, tolerance: Ratio(20_000) };
    let task = net.submit(&client, auction_spec("10", policy));
    assert_eq!(net.balance(&client), minus("1000", &[ogpu("13.2"), net.fee()]), "12.2 escrow + 1 trust lock");

    net.auction(task, &[(&p1, "6"), (&p2, "8"), (&p3, "9")]);
    let executors = net.task(task).executors;
    assert_eq!(
        (executors[0].provider, executors[0].price),
        (addr(&p1), ogpu("8")),
        "lowest bid wins at the second price"
    );

    let trace = Trace { root: Hash::of_bytes(b"checkpoints"), checkpoints: 5 };
    execute(&mut net, task, &p1, ResultClaim { output: Hash::of_bytes(b"model"), trace: Some(trace) });
    let verifier = selected_verifiers(&net)[0];
    let verifier_key = if verifier == addr(&p2) { &p2 } else { &p3 };
    assert!(matches!(net.task(task).phase, Phase::Verifying { reason: VerifyReason::ProofOfLearning, .. }));
    assert!(net.task(task).verifiers[0].segment.is_some_and(|s| s < 4));
    report(&mut net, verifier_key, task, &p1, true);

    assert_eq!(finish(&mut net, task), Outcome::Completed { output: Hash::of_bytes(b"model") });
    let protocol_fee = ogpu("0.16");
    assert_eq!(net.balance(&client), minus("1000", &[ogpu("8"), ogpu("0.5"), protocol_fee, net.fee()]));
    assert_eq!(net.balance(&p1), plus(minus("400", &[fees(&net, 7)]), &[ogpu("8")]));
    assert_eq!(net.balance(verifier_key), plus(minus("400", &[fees(&net, 5)]), &[ogpu("0.5")]));
    assert_eq!(net.state.reward_pool, protocol_fee);
    assert_eq!(net.state.providers.get(&addr(&p1)).unwrap().reputation, 510);
    let task = net.task(task);
    assert_eq!((task.escrow, task.client_lock), (Amount::ZERO, Amount::ZERO));
}

/// A container's declared training fixes how many checkpoints its trace has: an executor
/// that stopped early cannot have its verifiers drawn from the few segments it made.
#[test]
fn a_containers_trace_must_have_the_checkpoints_its_declared_training_makes() {
    let (client, p1, p2) = (key("client"), key("p1"), key("p2"));
    let mut net = Net::new(&[(&client, "1000"), (&p1, "500"), (&p2, "500")]);
    // One task each: the first stays open, its executor's stake locked in it.
    net.provider(&p1, "H100", 80_000, "100");
    net.provider(&p2, "H100", 80_000, "100");
    let mut reveal_with = |provider: &SecretKey, checkpoints| {
        let policy = VerificationPolicy::ProofOfLearning { segments: 1, tolerance: Ratio(0) };
        let mut spec = auction_spec("10", policy);
        spec.workload.kind = WorkloadKind::Container;
        spec.workload.training = Some(Training { steps: 600, checkpoint_every: 100 });
        let task = net.submit(&client, spec);
        net.auction(task, &[(provider, "6")]);
        net.ok(provider, TxBody::StartTask { task });
        let claim = ResultClaim {
            output: Hash::of_bytes(b"model"),
            trace: Some(Trace { root: Hash::of_bytes(b"checkpoints"), checkpoints }),
        };
        let commit = net.commit_result(provider, task, claim);
        net.block(vec![commit]);
        let reveal = net.reveal_result(provider, task, claim);
        net.block(vec![reveal]).receipts[0].result.clone()
    };
    let refused = Err(TxError::InvalidClaim("the trace's checkpoints are not those the task's training makes"));
    assert_eq!(reveal_with(&p1, 2), refused, "stopped after the first segment");
    assert_eq!(reveal_with(&p2, 7), Ok(()), "after steps 0, 100, ..., 600");
}

#[test]
fn a_pool_job_is_won_by_the_earliest_commit_and_pays_matching_replicas() {
    let (client, owner, p1, p2, p3) = (key("client"), key("owner"), key("p1"), key("p2"), key("p3"));
    let mut net = Net::new(&[(&client, "100"), (&owner, "1"), (&p1, "500"), (&p2, "500"), (&p3, "500")]);
    let spec = PoolSpec {
        name: "embeddings".into(),
        kind: WorkloadKind::Onnx,
        model: BlobHash(Hash::of_bytes(b"minilm")),
        price_per_job: ogpu("1"),
        verification_rate: Ratio(0),
        min_stake: ogpu("10"),
    };
    let create = net.tx(&owner, TxBody::CreatePool { spec });
    let pool = PoolId(create.hash());
    net.block(vec![create]);
    for p in [&p1, &p2, &p3] {
        net.provider(p, "L4", 24_000, "100");
        net.ok(p, TxBody::JoinPool { pool, stake: ogpu("10") });
    }
    let mut job = auction_spec("1", VerificationPolicy::None);
    job.workload.kind = WorkloadKind::Onnx;
    job.market = Market::Pool { pool };
    let task = net.submit(&client, job);
    assert_eq!(net.balance(&client), minus("100", &[ogpu("1.432"), net.fee()]), "1.322 escrow + 0.11 lock");

    let answer = claim("embedding");
    let commits = vec![
        net.commit_result(&p2, task, answer),
        net.commit_result(&p1, task, answer),
        net.commit_result(&p3, task, answer),
    ];
    assert!(net.block(commits).receipts.iter().all(|r| r.result.is_ok()));
    let Phase::Racing { reveal_end, .. } = net.task(task).phase else { panic!() };
    let late = net.commit_result(&p1, task, answer);
    assert!(net.block(vec![late]).receipts[0].result.is_err(), "the commit window has closed");
    let reveals = vec![
        net.reveal_result(&p1, task, answer),
        net.reveal_result(&p2, task, answer),
        net.reveal_result(&p3, task, answer),
    ];
    assert!(net.block(reveals).receipts.iter().all(|r| r.result.is_ok()));
    net.advance_to(reveal_end);

    assert_eq!(finish(&mut net, task), Outcome::Completed { output: answer.output });
    let stake_and_fees = |n| plus(ogpu("110"), &[fees(&net, n)]);
    assert_eq!(
        net.balance(&p2),
        plus(ogpu("500").checked_sub(stake_and_fees(5)).unwrap(), &[ogpu("1")]),
        "the earliest commit wins"
    );
    for (replica, txs) in [(&p1, 6), (&p3, 5)] {
        assert_eq!(net.balance(replica), plus(ogpu("500").checked_sub(stake_and_fees(txs)).unwrap(), &[ogpu("0.05")]));
    }
    assert_eq!(net.balance(&client), minus("100", &[ogpu("1.1"), ogpu("0.022"), net.fee()]));
}

#[test]
fn a_cheating_provider_is_slashed_the_client_compensated_and_the_task_reauctioned() {
    let (client, p1, p2, p3) = (key("client"), key("p1"), key("p2"), key("p3"));
    let mut net = Net::new(&[(&client, "1000"), (&p1, "500"), (&p2, "500"), (&p3, "500")]);
    for p in [&p1, &p2, &p3] {
        net.provider(p, "H100", 80_000, "100");
    }
    let task =
        net.submit(&client, auction_spec("10", VerificationPolicy::SpotCheck { p: Ratio::ONE, tolerance: Ratio(0) }));
    net.auction(task, &[(&p1, "5"), (&p2, "7"), (&p3, "9")]);
    execute(&mut net, task, &p1, claim("garbage"));
    let verifier = selected_verifiers(&net)[0];
    let first_verifier = if verifier == addr(&p2) { &p2 } else { &p3 };
    report(&mut net, first_verifier, task, &p1, false);

    let slashed = ogpu("20");
    assert!(net.events().contains(&Event::Slashed {
        who: addr(&p1),
        amount: slashed,
        reason: SlashReason::WrongResult
    }));
    assert!(net.events().contains(&Event::Paid {
        task,
        to: addr(&client),
        amount: ogpu("10"),
        why: PayReason::Compensation
    }));
    assert_eq!(net.state.supply.burned, ogpu("10"), "what exceeds the compensation is burned");
    let provider = net.state.providers.get(&addr(&p1)).unwrap();
    assert_eq!((provider.stake, provider.reputation), (ogpu("80"), 400));
    assert!(provider.jailed_until > net.height());
    assert!(matches!(net.task(task).phase, Phase::Bidding { .. }), "re-auctioned");
    assert_eq!(net.task(task).rounds, 2);

    let bid_of_p1 = net.commit_bid(&p1, task, "1");
    assert!(net.block(vec![bid_of_p1]).receipts[0].result.is_err(), "the cheater may not bid again");
    net.auction(task, &[(&p2, "7"), (&p3, "9")]);
    assert_eq!(net.task(task).executors[0].provider, addr(&p2));
    execute(&mut net, task, &p2, claim("right"));
    assert_eq!(selected_verifiers(&net), vec![addr(&p3)], "the only provider with no part in the task");
    report(&mut net, &p3, task, &p2, true);
    assert_eq!(finish(&mut net, task), Outcome::Completed { output: claim("right").output });

    let fee_per_verifier = ogpu("0.5");
    let paid = [ogpu("9"), fee_per_verifier, fee_per_verifier, ogpu("0.18"), net.fee()];
    assert_eq!(net.balance(&client), plus(minus("1000", &paid), &[ogpu("10")]));
    let p2_verified_first = verifier == addr(&p2);
    let p2_txs = if p2_verified_first { 10 } else { 9 };
    let p2_earned = if p2_verified_first { plus(ogpu("9"), &[fee_per_verifier]) } else { ogpu("9") };
    assert_eq!(net.balance(&p2), plus(minus("400", &[fees(&net, p2_txs)]), &[p2_earned]));
}

#[test]
fn a_winner_that_never_starts_is_slashed_a_little_and_replaced() {
    let (client, p1, p2) = (key("client"), key("p1"), key("p2"));
    let mut net = Net::new(&[(&client, "1000"), (&p1, "500"), (&p2, "500")]);
    for p in [&p1, &p2] {
        net.provider(p, "H100", 80_000, "100");
    }
    let task = net.submit(&client, auction_spec("10", VerificationPolicy::None));
    net.auction(task, &[(&p1, "4"), (&p2, "6")]);
    let start_by = net.task(task).executors[0].stage_due;
    net.advance_to(start_by);
    assert!(net.events().contains(&Event::Slashed {
        who: addr(&p1),
        amount: ogpu("1"),
        reason: SlashReason::StartTimeout
    }));
    assert!(net.events().contains(&Event::Paid {
        task,
        to: addr(&client),
        amount: ogpu("1"),
        why: PayReason::Compensation
    }));
    assert!(matches!(net.task(task).phase, Phase::Bidding { .. }));
    assert!(net.task(task).excluded.contains(&addr(&p1)));

    net.auction(task, &[(&p2, "6")]);
    assert_eq!(net.task(task).executors[0].price, ogpu("10"), "a lone bidder is paid the maximum");
    execute(&mut net, task, &p2, claim("done"));
    assert_eq!(finish(&mut net, task), Outcome::Completed { output: claim("done").output });
    assert_eq!(net.balance(&client), plus(minus("1000", &[ogpu("10"), ogpu("0.2"), net.fee()]), &[ogpu("1")]));
}

/// A chain with `count` staked A100 providers `p0`, `p1`, ... and a funded client.
fn providers_and_a_client(count: usize) -> (Net, SecretKey, Vec<SecretKey>) {
    let keys: Vec<SecretKey> = (0..count).map(|i| key(&format!("p{i}"))).collect();
    let client = key("client");
    let mut funded: Vec<(&SecretKey, &str)> = keys.iter().map(|k| (k, "500")).collect();
    funded.push((&client, "1000"));
    let mut net = Net::new(&funded);
    for p in &keys {
        net.provider(p, "A100", 40_000, "100");
    }
    (net, client, keys)
}

#[test]
fn replication_slashes_the_executor_outside_the_quorum() {
    let (mut net, client, keys) = providers_and_a_client(4);
    let task =
        net.submit(&client, auction_spec("10", VerificationPolicy::Replicate { n: 3, quorum: 2, tolerance: Ratio(0) }));
    let bids: Vec<(&SecretKey, &str)> = vec![(&keys[0], "3"), (&keys[1], "4"), (&keys[2], "5"), (&keys[3], "6")];
    net.auction(task, &bids);
    let executors: Vec<_> = net.task(task).executors.iter().map(|e| (e.provider, e.price)).collect();
    assert_eq!(
        executors,
        (0..3).map(|i| (addr(&keys[i]), ogpu("6"))).collect::<Vec<_>>(),
        "three winners at the best losing price"
    );

    let starts = keys[..3].iter().map(|k| net.tx(k, TxBody::StartTask { task })).collect();
    net.block(starts);
    let outputs = [claim("a"), claim("a"), claim("b")];
    let commits = (0..3).map(|i| net.commit_result(&keys[i], task, outputs[i])).collect();
    net.block(commits);
    assert!(matches!(net.task(task).phase, Phase::Revealing { .. }));
    let reveals = (0..3).map(|i| net.reveal_result(&keys[i], task, outputs[i])).collect();
    net.block(reveals);
    assert!(net.events().iter().any(|e| matches!(e, Event::Slashed { who, .. } if *who == addr(&keys[2]))));
    assert_eq!(finish(&mut net, task), Outcome::Completed { output: claim("a").output });
    for k in &keys[..2] {
        assert_eq!(net.balance(k), plus(minus("400", &[fees(&net, 7)]), &[ogpu("6")]));
    }
}

/// Under a tolerance, replicas whose results differ are not slashed by the exact majority:
/// verifiers judge each of them, and all that pass are paid.
#[test]
fn replication_under_a_tolerance_sends_differing_results_to_verifiers_instead_of_slashing() {
    let (mut net, client, keys) = providers_and_a_client(5);
    let policy = VerificationPolicy::Replicate { n: 3, quorum: 2, tolerance: Ratio(10_000) };
    let task = net.submit(&client, auction_spec("10", policy));
    let bids: Vec<(&SecretKey, &str)> = (0..5).map(|i| (&keys[i], ["3", "4", "5", "6", "7"][i])).collect();
    net.auction(task, &bids);
    let starts = keys[..3].iter().map(|k| net.tx(k, TxBody::StartTask { task })).collect();
    net.block(starts);
    let outputs = [claim("a"), claim("a"), claim("a, within 1%")];
    let commits = (0..3).map(|i| net.commit_result(&keys[i], task, outputs[i])).collect();
    net.block(commits);
    let reveals = (0..3).map(|i| net.reveal_result(&keys[i], task, outputs[i])).collect();
    net.block(reveals);
    assert!(!net.events().iter().any(|e| matches!(e, Event::Slashed { .. })), "{:?}", net.events());
    assert!(matches!(net.task(task).phase, Phase::Verifying { reason: VerifyReason::Dispute, .. }));
    let verifiers: Vec<Address> = net.task(task).verifiers.iter().map(|slot| slot.verifier).collect();
    assert!(!verifiers.is_empty());
    // Every report in one block: the verification window is a few blocks long.
    let mut reports = Vec::new();
    for verifier in keys.iter().filter(|k| verifiers.contains(&addr(k))) {
        let nonce = net.state.account(&addr(verifier)).nonce;
        for (n, executor) in (nonce..).zip(&keys[..3]) {
            let report = VerificationReport { subject: addr(executor), pass: true, distance_ppm: 4_000 };
            let body = TxBody::Report { task, report };
            reports.push(Transaction::sign(verifier, net.state.chain_id.clone(), n, net.fee(), body));
        }
    }
    assert!(net.block(reports).receipts.iter().all(|receipt| receipt.result.is_ok()));
    assert!(matches!(finish(&mut net, task), Outcome::Completed { .. }));
    assert!(!net.events().iter().any(|e| matches!(e, Event::Slashed { .. })), "nobody was slashed");
    for k in &keys[..3] {
        assert!(net.balance(k) > minus("400", &[fees(&net, 7)]), "each replica was paid");
    }
}

#[test]
fn a_task_nobody_can_take_reports_why_and_refunds_everything() {
    let (client, small, jailed_less) = (key("client"), key("small-gpu"), key("unstaked"));
    let mut net = Net::new(&[(&client, "100"), (&small, "500"), (&jailed_less, "500")]);
    net.provider(&small, "T4", 16_000, "100");
    net.ok(&jailed_less, TxBody::RegisterProvider { profile: profile("H100", 80_000) });
    let mut spec = auction_spec("10", VerificationPolicy::None);
    spec.requirements = Requirements { gpus: 1, min_vram_mb: 40_000, models: vec![], min_reputation: 0 };
    let task = net.submit(&client, spec);
    let Phase::Bidding { reveal_end, .. } = net.task(task).phase else { panic!() };
    net.advance_to(reveal_end);
    let Phase::Done(Outcome::Unfilled(report)) = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    assert_eq!((report.providers, report.too_little_vram, report.stake_too_low, report.eligible), (2, 1, 1, 0));
    assert_eq!(net.balance(&client), minus("100", &[net.fee()]), "everything reserved came back");
}

#[test]
fn a_frivolous_challenge_forfeits_its_bond_to_the_executor() {
    let (client, p1, p2, p3, critic) = (key("client"), key("p1"), key("p2"), key("p3"), key("critic"));
    let mut net = Net::new(&[(&client, "1000"), (&p1, "500"), (&p2, "500"), (&p3, "500"), (&critic, "50")]);
    for p in [&p1, &p2, &p3] {
        net.provider(p, "H100", 80_000, "100");
    }
    let task = net.submit(&client, auction_spec("10", VerificationPolicy::None));
    net.auction(task, &[(&p1, "5")]);
    execute(&mut net, task, &p1, claim("fine"));
    assert_eq!(
        net.run(&critic, TxBody::Challenge { task, bond: ogpu("1") }),
        Err(TxError::BondTooSmall { min: ogpu("10") })
    );
    net.ok(&critic, TxBody::Challenge { task, bond: ogpu("10") });
    let verifiers = selected_verifiers(&net);
    assert_eq!(verifiers.len(), 2, "p2 and p3: everyone but the executor");
    for v in [&p2, &p3] {
        report(&mut net, v, task, &p1, true);
    }
    assert!(matches!(net.task(task).phase, Phase::Done(Outcome::Completed { .. })));
    assert_eq!(net.balance(&critic), minus("50", &[ogpu("10"), fees(&net, 2)]));
    assert_eq!(
        net.balance(&p1),
        plus(minus("400", &[fees(&net, 7)]), &[ogpu("10"), ogpu("10")]),
        "price plus the bond"
    );
}

#[test]
fn a_pool_job_with_a_dissenting_replica_is_settled_by_verifiers() {
    let (client, owner, p1, p2, v) = (key("client"), key("owner"), key("p1"), key("p2"), key("verifier"));
    let mut net = Net::new(&[(&client, "100"), (&owner, "1"), (&p1, "500"), (&p2, "500"), (&v, "500")]);
    let spec = PoolSpec {
        name: "wasm".into(),
        kind: WorkloadKind::Wasm,
        model: BlobHash(Hash::of_bytes(b"module")),
        price_per_job: ogpu("1"),
        verification_rate: Ratio(0),
        min_stake: ogpu("1"),
    };
    let create = net.tx(&owner, TxBody::CreatePool { spec });
    let pool = PoolId(create.hash());
    net.block(vec![create]);
    for p in [&p1, &p2, &v] {
        net.provider(p, "L4", 24_000, "100");
    }
    for p in [&p1, &p2] {
        net.ok(p, TxBody::JoinPool { pool, stake: ogpu("5") });
    }
    let job = TaskSpec {
        market: Market::Pool { pool },
        workload: Workload {
            kind: WorkloadKind::Wasm,
            program: BlobHash(Hash::ZERO),
            inputs: Default::default(),
            args: vec![],
            env: Default::default(),
            training: None,
            limits: Limits::default(),
        },
        ..auction_spec("1", VerificationPolicy::None)
    };
    let task = net.submit(&client, job);
    let Phase::Racing { reveal_end, .. } = net.task(task).phase else { panic!() };
    let commits = vec![net.commit_result(&p1, task, claim("wrong")), net.commit_result(&p2, task, claim("right"))];
    net.block(commits);
    let reveals = vec![net.reveal_result(&p1, task, claim("wrong")), net.reveal_result(&p2, task, claim("right"))];
    net.block(reveals);
    net.advance_to(reveal_end);
    assert!(matches!(net.task(task).phase, Phase::Verifying { reason: VerifyReason::Dispute, .. }));
    assert_eq!(selected_verifiers(&net), vec![addr(&v)]);
    report(&mut net, &v, task, &p1, false);
    report(&mut net, &v, task, &p2, true);
    assert!(net.state.pools.get(&pool).unwrap().subscribers[&addr(&p1)] < ogpu("5"), "pool stake slashed too");
    assert_eq!(finish(&mut net, task), Outcome::Completed { output: claim("right").output });
    assert_eq!(net.balance(&p2), plus(minus("395", &[fees(&net, 5)]), &[ogpu("1")]), "the honest later commit wins");
    let _ = StakeRole::Provider;
}
