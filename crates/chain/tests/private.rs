//! Private tasks: only providers with a reader key take them, the client's keys go only
//! to the task's workers, and a task that cannot be read ends with a refund, nobody paid
//! and nobody slashed.

mod common;

use common::*;
use ogpu_chain::Event;
use ogpu_chain::error::{Ineligible, TxError};
use ogpu_chain::receipt::SlashReason;
use ogpu_chain::state::{Outcome, Phase};
use ogpu_core::rng::DetRng;
use ogpu_core::sealed::{ContentKey, Envelope, ReaderSecret, SealError, key_context};
use ogpu_core::spec::{Ratio, TaskSpec, VerificationPolicy};
use ogpu_core::tx::TxBody;
use ogpu_core::{Amount, BlobHash, Hash, SecretKey, TaskId};

fn rng(purpose: &str) -> DetRng {
    DetRng::new(&Hash::ZERO, purpose, &[])
}

/// A provider whose profile carries the reader key of `secret`, staked.
fn reader_provider(net: &mut Net, key: &SecretKey, secret: &ReaderSecret) {
    let profile = ogpu_core::spec::DeviceProfile { reader: Some(secret.public()), ..profile("H100", 80_000) };
    net.ok(key, TxBody::RegisterProvider { profile });
    net.ok(key, TxBody::Stake { role: ogpu_core::tx::StakeRole::Provider, amount: ogpu("200") });
}

/// A private training task with one input: two blobs, two keys per worker.
fn private_spec(client: &ReaderSecret) -> TaskSpec {
    let mut spec = auction_spec("10", VerificationPolicy::None);
    spec.workload.inputs.insert("data".into(), BlobHash(Hash::of_bytes(b"sealed data")));
    TaskSpec { private: Some(client.public()), ..spec }
}

/// A content key for each of a private spec's two blobs.
fn content_keys() -> Vec<ContentKey> {
    (0..2).map(|_| ContentKey::generate(&mut rng("content"))).collect()
}

/// Envelopes for each blob of `task`, wrapped to `reader` for the worker `to`.
fn envelopes(
    task: TaskId,
    to: &SecretKey,
    reader: &ReaderSecret,
    keys: &[ContentKey],
    spec: &TaskSpec,
) -> Vec<Envelope> {
    let mut rng = rng("envelopes");
    spec.workload
        .blobs()
        .zip(keys)
        .map(|(blob, key)| Envelope::wrap(key, &reader.public(), &key_context(&task, &addr(to), &blob), &mut rng))
        .collect()
}

/// A private task replicated twice, awarded to `workers` and each one's keys posted.
fn replicated(net: &mut Net, client: &SecretKey, workers: [(&SecretKey, &ReaderSecret); 2]) -> (TaskId, TaskSpec) {
    let spec = TaskSpec {
        verification: VerificationPolicy::Replicate { n: 2, quorum: 2, tolerance: Ratio(0) },
        ..private_spec(&ReaderSecret::generate(&mut rng("client")))
    };
    let task = net.submit(client, spec.clone());
    net.auction(task, &[(workers[0].0, "8"), (workers[1].0, "9")]);
    let content = content_keys();
    for (worker, reader) in workers {
        let keys = envelopes(task, worker, reader, &content, &spec);
        net.ok(client, TxBody::PostKeys { task, to: addr(worker), keys });
    }
    (task, spec)
}

fn stake(net: &Net, key: &SecretKey) -> Amount {
    net.state.providers.get(&addr(key)).unwrap().stake
}

struct Setup {
    net: Net,
    client: SecretKey,
    client_reader: ReaderSecret,
    provider: SecretKey,
    reader: ReaderSecret,
    task: TaskId,
    spec: TaskSpec,
}

/// A client, a provider with a reader key, and a private task awarded to it.
fn awarded() -> Setup {
    let (client, provider) = (key("client"), key("provider"));
    // Room before the start deadline for the refused transactions the tests send first.
    let params = ogpu_chain::Params { start_timeout_blocks: 20, ..test_params() };
    let mut net = Net::with_params(&[(&client, "1000"), (&provider, "1000")], params);
    let mut draw = rng("readers");
    let (client_reader, reader) = (ReaderSecret::generate(&mut draw), ReaderSecret::generate(&mut draw));
    reader_provider(&mut net, &provider, &reader);
    let spec = private_spec(&client_reader);
    let task = net.submit(&client, spec.clone());
    net.auction(task, &[(&provider, "8")]);
    Setup { net, client, client_reader, provider, reader, task, spec }
}

#[test]
fn a_provider_without_a_reader_key_cannot_bid_on_a_private_task() {
    let (client, keyless) = (key("client"), key("keyless"));
    let mut net = Net::new(&[(&client, "1000"), (&keyless, "1000")]);
    net.provider(&keyless, "H100", 80_000, "200");
    let task = net.submit(&client, private_spec(&ReaderSecret::generate(&mut rng("client"))));
    let commit = net.commit_bid(&keyless, task, "8");
    assert_eq!(net.block(vec![commit]).receipts[0].result, Err(TxError::Ineligible(Ineligible::NoReaderKey)));
}

#[test]
fn keys_go_only_from_the_client_to_a_worker_one_per_blob_once_and_open_only_for_it() {
    let Setup { mut net, client, client_reader, provider, reader, task, spec } = awarded();
    let stranger = key("stranger");
    let content = content_keys();
    let keys = envelopes(task, &provider, &reader, &content, &spec);
    let post = |to: &SecretKey, keys: Vec<Envelope>| TxBody::PostKeys { task, to: addr(to), keys };

    assert_eq!(net.run(&provider, post(&provider, keys.clone())), Err(TxError::NotTheClient));
    assert_eq!(net.run(&client, post(&stranger, keys.clone())), Err(TxError::NotAWorker));
    assert_eq!(net.run(&client, post(&provider, keys[..1].to_vec())), Err(TxError::KeyCount { expected: 2, got: 1 }));
    assert!(net.task(task).keys.is_empty(), "a refused post leaves no key behind");
    net.ok(&client, post(&provider, keys.clone()));
    assert!(net.events().contains(&Event::KeysPosted { task, to: addr(&provider) }));
    assert_eq!(net.run(&client, post(&provider, keys)), Err(TxError::KeysAlreadyPosted));
    // The client keeps its own copy, wrapped to the reader key its task names.
    let own = envelopes(task, &client, &client_reader, &content, &spec);
    assert_eq!(net.run(&provider, post(&client, own.clone())), Err(TxError::NotTheClient));
    let start_by = net.task(task).executors[0].stage_due;
    net.ok(&client, post(&client, own));
    assert_eq!(net.task(task).executors[0].stage_due, start_by, "the client's own copy starts nobody's clock");

    // What the chain holds opens with the worker's secret, for this task and blob only.
    let posted = &net.task(task).keys[&addr(&provider)];
    for ((envelope, blob), original) in posted.iter().zip(spec.workload.blobs()).zip(&content) {
        let opened = envelope.open(&reader, &key_context(&task, &addr(&provider), &blob)).unwrap();
        assert_eq!(opened.as_bytes(), original.as_bytes());
        let elsewhere = key_context(&TaskId(Hash::of_bytes(b"another task")), &addr(&provider), &blob);
        assert!(matches!(envelope.open(&reader, &elsewhere), Err(SealError::Envelope)));
    }

    // With its keys the executor works and is paid as on any task.
    net.ok(&provider, TxBody::StartTask { task });
    let commit = net.commit_result(&provider, task, claim("out"));
    net.block(vec![commit]);
    // Its result is revealed with the index of its sealed copy, which nodes then keep.
    let unsealed = net.reveal_result(&provider, task, claim("out"));
    let refused = &net.block(vec![unsealed]).receipts[0].result;
    assert!(matches!(refused, Err(TxError::InvalidClaim(why)) if why.contains("sealed index")), "{refused:?}");
    let reveal = net.reveal_sealed(&provider, task, claim("out"));
    net.block(vec![reveal]);
    assert_eq!(net.task(task).executors[0].sealed, Some(sealed_index(&provider)));
    let Phase::Challengeable { challenge_end } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    net.advance_to(challenge_end);
    assert!(matches!(net.task(task).phase, Phase::Done(Outcome::Completed { .. })));
}

#[test]
fn a_client_that_posts_no_keys_in_time_is_refunded_and_the_executor_is_not_slashed() {
    let Setup { mut net, client, provider, task, .. } = awarded();
    let (before, staked) = (net.balance(&client), stake(&net, &provider));
    let start_by = net.task(task).executors[0].stage_due;
    net.advance_to(start_by);
    let Phase::Done(Outcome::Failed(reason)) = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    assert!(reason.contains("posted no keys"), "{reason}");
    assert!(!net.events().iter().any(|e| matches!(e, Event::Slashed { .. })));
    assert_eq!(stake(&net, &provider), staked);
    let reserved = ogpu_chain::reservation(&net.state.params, &net.task(task).spec, ogpu("10"), false).unwrap();
    assert_eq!(net.balance(&client), before.checked_add(reserved.total().unwrap()).unwrap());
}

#[test]
fn an_executor_given_its_keys_that_does_not_start_is_slashed_as_on_any_task() {
    let Setup { mut net, client, provider, reader, task, spec, .. } = awarded();
    let content = content_keys();
    let keys = envelopes(task, &provider, &reader, &content, &spec);
    net.ok(&client, TxBody::PostKeys { task, to: addr(&provider), keys });
    let staked = stake(&net, &provider);
    net.advance_to(net.task(task).executors[0].stage_due);
    assert!(net.events().iter().any(|e| matches!(e, Event::Slashed { reason: SlashReason::StartTimeout, .. })));
    assert!(stake(&net, &provider) < staked);
}

#[test]
fn keys_that_do_not_open_let_the_executor_decline_with_nobody_paid_or_slashed() {
    let Setup { mut net, client, client_reader, provider, reader, task, spec } = awarded();
    let content = content_keys();
    // Wrapped to the wrong reader key: the client's own, not the provider's.
    let wrong = envelopes(task, &provider, &client_reader, &content, &spec);
    net.ok(&client, TxBody::PostKeys { task, to: addr(&provider), keys: wrong });
    let program = spec.workload.program;
    let failure = net.task(task).keys[&addr(&provider)][0]
        .open(&reader, &key_context(&task, &addr(&provider), &program))
        .err()
        .expect("the envelope is not for this reader");
    assert!(matches!(failure, SealError::Envelope));

    let decline = |reason: String| TxBody::DeclineTask { task, reason };
    assert_eq!(net.run(&client, decline("no".into())), Err(TxError::NotAnExecutor));
    let long = "x".repeat(257);
    assert_eq!(net.run(&provider, decline(long)), Err(TxError::ReasonTooLong { max: 256 }));
    let (before, staked) = (net.balance(&client), stake(&net, &provider));
    let earned = net.balance(&provider);
    net.ok(&provider, decline(failure.to_string()));
    let Phase::Done(Outcome::Failed(reason)) = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    assert!(reason.contains("could not read") && reason.contains("does not open"), "{reason}");
    assert_eq!(stake(&net, &provider), staked);
    assert_eq!(net.balance(&provider), earned.checked_sub(net.fee()).unwrap(), "paid nothing but its fee");
    let reserved = ogpu_chain::reservation(&net.state.params, &net.task(task).spec, ogpu("10"), false).unwrap();
    assert_eq!(net.balance(&client), before.checked_add(reserved.total().unwrap()).unwrap());
}

#[test]
fn a_public_task_takes_no_keys_and_no_decline() {
    let (client, provider) = (key("client"), key("provider"));
    let mut net = Net::new(&[(&client, "1000"), (&provider, "1000")]);
    net.provider(&provider, "H100", 80_000, "200");
    let task = net.submit(&client, auction_spec("10", VerificationPolicy::None));
    net.auction(task, &[(&provider, "8")]);
    assert_eq!(
        net.run(&client, TxBody::PostKeys { task, to: addr(&provider), keys: vec![] }),
        Err(TxError::NotPrivate)
    );
    assert_eq!(net.run(&provider, TxBody::DeclineTask { task, reason: "no".into() }), Err(TxError::NotPrivate));
    net.ok(&provider, TxBody::StartTask { task });
    let commit = net.commit_result(&provider, task, claim("out"));
    net.block(vec![commit]);
    let sealed = net.reveal_sealed(&provider, task, claim("out"));
    let refused = &net.block(vec![sealed]).receipts[0].result;
    assert_eq!(refused, &Err(TxError::InvalidClaim("only a private task's result is sealed")));
}

#[test]
fn keys_posted_in_the_block_of_the_start_deadline_leave_a_whole_start_window() {
    let Setup { mut net, client, provider, reader, task, spec, .. } = awarded();
    let content = content_keys();
    let keys = envelopes(task, &provider, &reader, &content, &spec);
    let start_by = net.task(task).executors[0].stage_due;
    net.advance_to(start_by - 1);
    net.ok(&client, TxBody::PostKeys { task, to: addr(&provider), keys });
    assert_eq!(net.height(), start_by);
    assert!(!net.events().iter().any(|e| matches!(e, Event::Slashed { .. })), "{:?}", net.events());
    assert_eq!(net.task(task).executors[0].stage_due, start_by + 20);
    net.ok(&provider, TxBody::StartTask { task });
}

#[test]
fn once_another_executor_committed_a_decline_takes_only_the_decliner_off_the_task() {
    let (client, first, second) = (key("client"), key("first"), key("second"));
    let params = ogpu_chain::Params { start_timeout_blocks: 20, ..test_params() };
    let mut net = Net::with_params(&[(&client, "1000"), (&first, "1000"), (&second, "1000")], params);
    let mut draw = rng("readers");
    let (first_reader, second_reader) = (ReaderSecret::generate(&mut draw), ReaderSecret::generate(&mut draw));
    reader_provider(&mut net, &first, &first_reader);
    reader_provider(&mut net, &second, &second_reader);
    let (task, _) = replicated(&mut net, &client, [(&first, &first_reader), (&second, &second_reader)]);
    assert_eq!(net.task(task).executors.len(), 2);
    net.ok(&first, TxBody::StartTask { task });
    let commit = net.commit_result(&first, task, claim("out"));
    net.block(vec![commit]);

    let before = net.balance(&client);
    net.ok(&second, TxBody::DeclineTask { task, reason: "chunk 0 does not authenticate".into() });
    let after = net.task(task);
    assert!(matches!(after.phase, Phase::Bidding { .. }), "its slot is auctioned again: {:?}", after.phase);
    assert_eq!(after.executors.iter().map(|e| e.provider).collect::<Vec<_>>(), [addr(&first)]);
    assert!(after.excluded.contains(&addr(&second)));
    assert_eq!(net.balance(&client), before, "no refund while work on it stands");
    assert!(!net.events().iter().any(|e| matches!(e, Event::Slashed { .. })));
    assert_eq!(net.run(&first, TxBody::DeclineTask { task, reason: "x".into() }), Err(TxError::AlreadyCommitted));
}

#[test]
fn a_client_that_keeps_the_keys_from_dispute_verifiers_pays_the_executors() {
    let (client, first, second, checker) = (key("client"), key("first"), key("second"), key("checker"));
    let params = ogpu_chain::Params { start_timeout_blocks: 20, ..test_params() };
    let funded = [(&client, "1000"), (&first, "1000"), (&second, "1000"), (&checker, "1000")];
    let mut net = Net::with_params(&funded, params);
    let mut draw = rng("readers");
    let readers: Vec<ReaderSecret> = (0..3).map(|_| ReaderSecret::generate(&mut draw)).collect();
    for (provider, reader) in [&first, &second, &checker].into_iter().zip(&readers) {
        reader_provider(&mut net, provider, reader);
    }
    let (task, _) = replicated(&mut net, &client, [(&first, &readers[0]), (&second, &readers[1])]);
    // The two disagree: verifiers are called, and the client gives them no keys.
    for (provider, output) in [(&first, "honest"), (&second, "other")] {
        net.ok(provider, TxBody::StartTask { task });
        let commit = net.commit_result(provider, task, claim(output));
        net.block(vec![commit]);
    }
    for (provider, output) in [(&first, "honest"), (&second, "other")] {
        let reveal = net.reveal_sealed(provider, task, claim(output));
        net.block(vec![reveal]);
    }
    let Phase::Verifying { report_end, .. } = net.task(task).phase else { panic!("{:?}", net.task(task).phase) };
    net.advance_to(report_end);
    let Phase::Challengeable { challenge_end } = net.task(task).phase else {
        panic!("a silent dispute without keys is no refund: {:?}", net.task(task).phase)
    };
    net.advance_to(challenge_end);
    assert!(matches!(net.task(task).phase, Phase::Done(Outcome::Completed { .. })));
    let paid: Vec<_> = net
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Paid { to, why: ogpu_chain::receipt::PayReason::Execution, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(paid, [addr(&first), addr(&second)]);
}
