mod common;
use common::*;

// A client adjusting a task while it runs: what a cancel gives back and a top-up takes,
// to the base unit. (What each refuses, and that a refusal changes nothing but the fee,
// is in rejections.rs.)
//
// For `auction_spec("10", None)` under the test parameters the reservation is 12.7 oGPU:
// escrow 10.2 (the cap for one executor and the 2% protocol fee), a verification budget
// of 1.5 (5% of the cap for each of 3 dispute verifiers) and a trust lock of 1 (10%).

use ogpu_chain::state::{Outcome, Phase};
use ogpu_chain::{Event, TxError};
use ogpu_core::spec::{Market, VerificationPolicy, WorkloadKind};
use ogpu_core::tx::TxBody;
use ogpu_core::{Amount, PoolId, SecretKey};

fn sub(a: Amount, b: Amount) -> Amount {
    a.checked_sub(b).unwrap()
}

fn fees(net: &Net, n: u128) -> Amount {
    net.fee().checked_mul(n).unwrap()
}

fn market(client: &SecretKey, provider: &SecretKey) -> Net {
    let mut net = Net::new(&[(client, "1000"), (provider, "500")]);
    net.provider(provider, "H100", 80_000, "100");
    net
}

#[test]
fn a_cancel_before_any_bid_gives_back_every_base_unit_it_reserved() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &p1);
    let start = net.balance(&client);
    let task = net.submit(&client, auction_spec("10", VerificationPolicy::None));
    assert_eq!(net.balance(&client), sub(start, ogpu("12.7").checked_add(net.fee()).unwrap()));

    net.ok(&client, TxBody::CancelTask { task });
    assert_eq!(net.balance(&client), sub(start, fees(&net, 2)), "all of the 12.7 is back; the fees are spent");
    assert!(net.events().contains(&Event::Refunded { task, client: addr(&client), amount: ogpu("12.7") }));
    let ended = net.task(task);
    assert_eq!(ended.phase, Phase::Done(Outcome::Cancelled));
    assert_eq!(
        (ended.escrow, ended.verification_budget, ended.client_lock),
        (Amount::ZERO, Amount::ZERO, Amount::ZERO)
    );
}

#[test]
fn a_pool_job_cancelled_before_any_commit_gives_back_every_base_unit_it_reserved() {
    let (client, owner) = (key("client"), key("owner"));
    let mut net = Net::new(&[(&client, "100"), (&owner, "1")]);
    let create = net.tx(&owner, TxBody::CreatePool { spec: pool_spec(ogpu("10")) });
    let pool = PoolId(create.hash());
    net.block(vec![create]);
    let mut job = auction_spec("1", VerificationPolicy::None);
    job.workload.kind = WorkloadKind::Onnx;
    job.market = Market::Pool { pool };
    let start = net.balance(&client);
    let task = net.submit(&client, job);
    assert!(matches!(net.task(task).phase, Phase::Racing { .. }));

    net.ok(&client, TxBody::CancelTask { task });
    assert_eq!(net.balance(&client), sub(start, fees(&net, 2)));
    assert!(net.events().contains(&Event::Refunded { task, client: addr(&client), amount: ogpu("1.432") }));
}

#[test]
fn a_top_up_reserves_exactly_what_the_higher_cap_adds_and_a_bid_above_the_old_cap_wins() {
    let (client, p1) = (key("client"), key("p1"));
    let mut net = market(&client, &p1);
    let task = net.submit(&client, auction_spec("10", VerificationPolicy::None));
    let before = net.balance(&client);

    net.ok(&client, TxBody::TopUpTask { task, max_price: ogpu("15") });
    // escrow 10.2 -> 15.3, verification 1.5 -> 2.25, trust lock 1 -> 1.5: 6.35 more.
    assert_eq!(net.balance(&client), sub(before, ogpu("6.35").checked_add(net.fee()).unwrap()));
    assert!(net.events().contains(&Event::ToppedUp { task, price_cap: ogpu("15"), added: ogpu("6.35") }));
    let raised = net.task(task);
    assert_eq!(raised.price_cap, ogpu("15"));
    assert!(matches!(raised.spec.market, Market::Auction { max_price, .. } if max_price == ogpu("15")));
    assert_eq!(
        (raised.escrow, raised.verification_budget, raised.client_lock),
        (ogpu("15.3"), ogpu("2.25"), ogpu("1.5"))
    );

    let commit = net.commit_bid(&p1, task, "12");
    assert_eq!(net.block(vec![commit]).receipts[0].result, Ok(()));
    let Phase::Bidding { commit_end, reveal_end, .. } = net.task(task).phase else { panic!("not bidding") };
    net.advance_to(commit_end);
    let reveal = net.reveal_bid(&p1, task, "12");
    assert_eq!(net.block(vec![reveal]).receipts[0].result, Ok(()));
    net.advance_to(reveal_end);
    let awarded = net.task(task);
    assert!(matches!(awarded.phase, Phase::Executing), "{:?}", awarded.phase);
    // The bid of 12 was above the old cap; alone, it is paid the cap (the second price).
    assert_eq!(awarded.executors[0].price, ogpu("15"));

    // Once awarded the price is settled: a cancel and a further top-up are refused.
    assert_eq!(net.run(&client, TxBody::CancelTask { task }), Err(TxError::NotCancellable { phase: "executing" }));
    let refused = net.run(&client, TxBody::TopUpTask { task, max_price: ogpu("20") });
    assert_eq!(refused, Err(TxError::WrongPhase { phase: "executing" }));
}
