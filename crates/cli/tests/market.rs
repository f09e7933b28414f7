//! End to end on a devnet of real processes (validators and provider agents): tasks
//! submitted with `ogpu task submit` are auctioned, raced, run, verified and settled, and
//! cheaters and dead providers are dealt with, down to the base unit of every balance.
//!
//! Each test starts its own devnet; they run one at a time, since each devnet wants the
//! machine's cores.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::market::*;
use ogpu_chain::Event;
use ogpu_chain::receipt::{PayReason, SlashReason};
use ogpu_chain::state::{Outcome, Phase};
use ogpu_core::keystore::Keystore;
use ogpu_core::spec::WorkloadKind;
use ogpu_core::{Address, Amount, Hash, PoolId, SecretKey};
use ogpu_runtime::{Job, Outcome as RunOutcome, Runtime, Runtimes, TaskError, WasmRuntime};

/// The wasm-sum example (sum of 1..=100) under `market` and `verification`.
fn sum_spec(market: &str, verification: &str) -> (tempfile::TempDir, PathBuf) {
    let spec = format!(
        r#"
name = "sum"
deadline_blocks = 30
[workload]
kind = "wasm"
program = "wasm-sum.wat"
inputs = {{ "numbers.txt" = "numbers.txt" }}
limits = {{ fuel = 100000000, memory_mb = 16, timeout_s = 60 }}
[market]
{market}
[verification]
{verification}
"#
    );
    spec_dir(&["wasm-sum.wat", "numbers.txt"], &spec)
}

const AUCTION: &str = "kind = \"auction\"\nmax_price = \"0.01\"\nbid_window = 1";

#[test]
fn an_auction_replicated_twice_settles_every_balance_exactly() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let (_dir, spec_path) = sum_spec(AUCTION, "policy = \"replicate\"\nn = 2\nquorum = 2");
    let spec = ogpu_client::spec::resolve(&spec_path).unwrap().spec;
    let client = Address::of(&devnet.client_key().public());
    let providers: Vec<Address> = (0..3).map(|i| devnet.provider_address(i)).collect();
    let parties: Vec<Address> = std::iter::once(client).chain(providers.iter().copied()).collect();
    let before: Vec<Amount> = parties.iter().map(|a| devnet.balance(a)).collect();
    let start_height = devnet.finalized_height();

    let output = devnet.ogpu(&["task", "submit", spec_path.to_str().unwrap()]);
    assert_success(&output);
    let id = submitted_id(&output);
    let Outcome::Completed { output: result } = devnet.wait_until_ended(&id, Duration::from_secs(60)) else {
        panic!("the task did not complete: {:?}", devnet.events(&id));
    };

    // The award: the two cheapest bids win, each paid the critical price, which with
    // equal reputations is the best losing bid.
    let quotes: Vec<Amount> = (0..3).map(|i| devnet.provider_config(i).pricing.quote(&spec).unwrap()).collect();
    let mut by_price: Vec<usize> = (0..3).collect();
    by_price.sort_by_key(|i| quotes[*i]);
    let events = devnet.events(&id);
    let awarded: BTreeMap<Address, Amount> = events
        .iter()
        .filter_map(|e| match e {
            Event::Awarded { provider, price, .. } => Some((*provider, *price)),
            _ => None,
        })
        .collect();
    let expected: BTreeMap<Address, Amount> =
        by_price[..2].iter().map(|i| (providers[*i], quotes[by_price[2]])).collect();
    assert_eq!(awarded, expected, "quotes {quotes:?}");

    // Settlement, to the base unit: what each party's balance moved by is what it was paid
    // or refunded, less what it reserved and the fees of its transactions.
    let reserved = events
        .iter()
        .find_map(|e| match e {
            Event::TaskSubmitted { reserved, .. } => Some(*reserved),
            _ => None,
        })
        .unwrap();
    let refunded = events
        .iter()
        .find_map(|e| match e {
            Event::Refunded { amount, .. } => Some(*amount),
            _ => None,
        })
        .unwrap();
    let executions: Vec<Amount> = providers.iter().map(|p| paid(&events, p, PayReason::Execution)).collect();
    let total_paid = executions.iter().fold(Amount::ZERO, |s, a| s.checked_add(*a).unwrap());
    assert_eq!(total_paid, quotes[by_price[2]].checked_mul(2).unwrap());
    let protocol_fee = total_paid.bps(200);
    assert_eq!(refunded, reserved.checked_sub(total_paid).unwrap().checked_sub(protocol_fee).unwrap());
    // The providers' last transactions (reveals after the award, say) may still be on
    // their way: wait until every balance is what the events say, or show which is not.
    let off = || -> Vec<(usize, Amount, Amount)> {
        let mut off = Vec::new();
        for (i, party) in parties.iter().enumerate() {
            let fees = devnet.fees_since(party, start_height);
            let after = devnet.balance(party);
            let (gained, spent) = match i {
                0 => (refunded, reserved.checked_add(fees).unwrap()),
                p => (executions[p - 1], fees),
            };
            let expected = before[i].checked_add(gained).unwrap().checked_sub(spent).unwrap();
            if after != expected {
                off.push((i, after, expected));
            }
        }
        off
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !off().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(off(), vec![], "(party, balance, expected): 0 is the client, then the providers");

    // The client fetches the result, and sees the winners' signed logs.
    let out = tempfile::tempdir().unwrap();
    let fetched = devnet.ogpu(&["task", "result", &id.to_string(), "--out", out.path().to_str().unwrap()]);
    assert_success(&fetched);
    let stdout = std::fs::read_to_string(out.path().join("sum.txt"));
    assert_eq!(stdout.ok().as_deref(), Some("5050\n"), "{fetched:?}");
    assert_eq!(result, ogpu_runtime::hash_dir(out.path()).unwrap());
    for (winner, price) in &awarded {
        let bids = devnet.ogpu(&["provider", "bids", "--address", &winner.to_string(), "-o", "json"]);
        let bids: serde_json::Value = serde_json::from_slice(&bids.stdout).unwrap();
        let won = bids["won"].as_array().unwrap().iter().find(|w| w["task"] == id.to_string().as_str());
        assert_eq!(won.map(|w| w["price"].clone()), Some(price.to_string().into()), "{bids}");
    }
    let logs = devnet.ogpu(&["task", "logs", &id.to_string()]);
    assert_success(&logs);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("started") && logs.contains(&format!("finished: output {result}")), "{logs}");
    assert!(!logs.contains("BAD SIGNATURE"), "{logs}");
}

/// Finding 10: a sealed bid held the provider's one slot for the whole bid window, so one
/// floor-priced task with a long window locked every default provider out of everything
/// else. Bids now hold no slot: a second task is bid on, won and run meanwhile, and the
/// long auction still finds its bidders.
#[test]
fn a_sealed_bid_does_not_keep_a_provider_from_other_tasks() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let none = "policy = \"none\"";
    let (_long_dir, long) = sum_spec("kind = \"auction\"\nmax_price = \"0.01\"\nbid_window = 20", none);
    let (_short_dir, short) = sum_spec(AUCTION, none);
    let submit = |path: &PathBuf| {
        let output = devnet.ogpu(&["task", "submit", path.to_str().unwrap(), "--no-wait"]);
        assert_success(&output);
        submitted_id(&output)
    };
    let long = submit(&long);
    let commit_end = wait_for("the long auction to open", Duration::from_secs(30), || match devnet.task(&long).phase {
        Phase::Bidding { commit_end, ref bids, .. } if !bids.is_empty() => Some(commit_end),
        _ => None,
    });
    let short = submit(&short);
    let outcome = devnet.wait_until_ended(&short, Duration::from_secs(60));
    assert!(matches!(outcome, Outcome::Completed { .. }), "the short task: {outcome:?}, {:?}", devnet.events(&short));
    let awarded_at = devnet
        .task_events(&short)
        .into_iter()
        .find_map(|(height, event)| matches!(event, Event::Awarded { .. }).then_some(height))
        .expect("the short task was awarded");
    assert!(awarded_at <= commit_end, "awarded at {awarded_at}, while the long auction took bids until {commit_end}");
    let outcome = devnet.wait_until_ended(&long, Duration::from_secs(90));
    assert!(matches!(outcome, Outcome::Completed { .. }), "the long task: {outcome:?}, {:?}", devnet.events(&long));
}

#[test]
fn a_pool_job_goes_to_the_first_valid_commit_and_matching_later_ones_are_replicas() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let price = Amount::from_base_units(10u128.pow(15));
    let model = Path::new(EXAMPLES).join("wasm-sum.wat");
    let create = |model: &str, price: &str| {
        let args = ["pool", "create", "--name", "wasm", "--kind", "wasm", "--model", model, "--price", price];
        devnet.ogpu(&[&args[..], &["--min-stake", "10", "--verification-rate", "0", "-o", "json"]].concat())
    };
    let unknown_model = create(&format!("blake3:{}", Hash::of_bytes(b"no such model")), "0.001");
    assert_eq!(unknown_model.status.code(), Some(2), "{unknown_model:?}");
    assert!(String::from_utf8_lossy(&unknown_model.stderr).contains("not in the node's store"), "{unknown_model:?}");
    let created = create(model.to_str().unwrap(), &price.to_string());
    assert_success(&created);
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id: PoolId = PoolId(created["pool"].as_str().unwrap().parse().unwrap());
    assert_eq!(devnet.client.pool(&id).unwrap().pool.spec.model, blake3_of(&model), "the model was uploaded");
    // The agents join every pool they can serve as it appears.
    wait_for("three subscribers", Duration::from_secs(60), || {
        let pool = devnet.client.pool(&id).ok()?.pool;
        (pool.subscribers.len() == 3).then_some(())
    });
    let listed = devnet.ogpu(&["pool", "list", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["pools"][0]["id"], id.to_string().as_str(), "{listed}");
    let shown = devnet.ogpu(&["pool", "show", &id.to_string()]);
    assert_success(&shown);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("3 subscriber(s)"), "{shown:?}");
    let not_a_provider = devnet.ogpu(&["pool", "join", &id.to_string(), "10"]);
    assert_eq!(not_a_provider.status.code(), Some(3), "{not_a_provider:?}");

    // A job: any spec, its market set to the pool.
    let (_dir, spec_path) = sum_spec(AUCTION, "policy = \"none\"");
    let output = devnet.ogpu(&["pool", "submit", &id.to_string(), spec_path.to_str().unwrap()]);
    assert_success(&output);
    let task = submitted_id(&output);
    assert!(matches!(devnet.wait_until_ended(&task, Duration::from_secs(60)), Outcome::Completed { .. }));
    let executors = devnet.task(&task).executors;
    let events = devnet.events(&task);
    assert!(executors.len() >= 2, "at least one replica: {executors:?}");
    let winner = executors[0].provider;
    assert_eq!(paid(&events, &winner, PayReason::Execution), price);
    let earnings = devnet.ogpu(&["provider", "earnings", "--address", &winner.to_string(), "-o", "json"]);
    let earnings: serde_json::Value = serde_json::from_slice(&earnings.stdout).unwrap();
    let earned: Amount = earnings["by_task"][task.to_string()].as_str().unwrap().parse().unwrap();
    assert_eq!(earned, price, "{earnings}");
    for replica in &executors[1..] {
        // Every honest agent computes the same output, so later commits match and earn the
        // replica fee (5% of the job's price).
        assert_eq!(paid(&events, &replica.provider, PayReason::Replica), Amount::from_base_units(5 * 10u128.pow(13)));
    }
}

/// The wasm runtime with its answer tampered: what a cheating provider would deliver.
struct Lying(WasmRuntime);

impl Runtime for Lying {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Wasm
    }

    fn run(&self, job: &Job<'_>) -> Result<RunOutcome, TaskError> {
        let honest = self.0.run(job)?;
        std::fs::write(job.output.join("sum.txt"), "4242\n").unwrap();
        let digest = ogpu_runtime::digest_dir(job.output)?;
        Ok(RunOutcome { output: digest.hash, files: digest.files, manifest: digest.manifest, ..honest })
    }
}

#[test]
fn a_provider_that_returns_a_wrong_result_is_slashed_and_the_task_completes_elsewhere() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let mut runtimes = Runtimes::new();
    runtimes.insert(Box::new(Lying(WasmRuntime::new().unwrap())));
    let cheater = InProcessAgent::start(&devnet, "market-test-cheater", runtimes);
    let (_dir, spec_path) = sum_spec(AUCTION, "policy = \"spot_check\"\np = 1.0");
    let output = devnet.ogpu(&["task", "submit", spec_path.to_str().unwrap()]);
    let cheater = {
        let address = cheater.address;
        drop(cheater);
        address
    };
    assert_success(&output);
    let id = submitted_id(&output);
    let events = devnet.events(&id);
    let first_award = events.iter().find_map(|e| match e {
        Event::Awarded { provider, .. } => Some(*provider),
        _ => None,
    });
    assert_eq!(first_award, Some(cheater), "the cheapest bid wins the first round: {events:?}");
    assert_eq!(devnet.slashes(&cheater), [SlashReason::WrongResult]);
    let client = Address::of(&devnet.client_key().public());
    assert!(!paid(&events, &client, PayReason::Compensation).is_zero(), "the client is compensated: {events:?}");
    let Phase::Done(Outcome::Completed { output }) = devnet.task(&id).phase else { panic!("not completed") };
    let honest_paid: Vec<Address> = events
        .iter()
        .filter_map(|e| match e {
            Event::Paid { to, why: PayReason::Execution, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(honest_paid.len(), 1);
    assert_ne!(honest_paid[0], cheater);
    let out = tempfile::tempdir().unwrap();
    let fetched = devnet.ogpu(&["task", "result", &id.to_string(), "--out", out.path().to_str().unwrap()]);
    assert_success(&fetched);
    assert_eq!(std::fs::read_to_string(out.path().join("sum.txt")).unwrap(), "5050\n");
    assert_eq!(output, ogpu_runtime::hash_dir(out.path()).unwrap());
}

#[test]
fn a_provider_killed_mid_task_is_slashed_and_the_task_is_auctioned_again() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    // Two seconds of work (as measured here, now), which the provider killed right after
    // its award cannot finish, and a deadline of 20 blocks (10 s) after the start, which
    // the next one can meet on a loaded machine.
    let steps = spin_steps_for(Duration::from_secs(2));
    let spec = format!(
        r#"
name = "spin"
deadline_blocks = 20
[workload]
kind = "wasm"
program = "wasm-spin.wat"
args = ["{steps}"]
limits = {{ fuel = 100000000000, memory_mb = 16, timeout_s = 60 }}
[market]
{AUCTION}
[verification]
policy = "none"
"#
    );
    let (_dir, spec_path) = spec_dir(&["wasm-spin.wat"], &spec);
    let output = devnet.ogpu(&["task", "submit", spec_path.to_str().unwrap(), "--no-wait"]);
    assert_success(&output);
    let id = submitted_id(&output);
    let first = wait_for("the award", Duration::from_secs(30), || {
        devnet.events(&id).iter().find_map(|e| match e {
            Event::Awarded { provider, .. } => Some(*provider),
            _ => None,
        })
    });
    let index = (0..3).find(|i| devnet.provider_address(*i) == first).unwrap();
    let needle = format!("provider-{index}/provider.toml");
    for pid in common::pids_running(&needle) {
        Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    }
    assert!(matches!(devnet.wait_until_ended(&id, Duration::from_secs(90)), Outcome::Completed { .. }));
    let events = devnet.events(&id);
    // Killed right after the award: it never started, or started and never committed.
    let slashed = devnet.slashes(&first);
    assert!(matches!(slashed[..], [SlashReason::StartTimeout | SlashReason::MissedDeadline]), "{slashed:?}");
    let executed_by: Vec<Address> = events
        .iter()
        .filter_map(|e| match e {
            Event::Paid { to, why: PayReason::Execution, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(executed_by.len(), 1);
    assert_ne!(executed_by[0], first, "another provider completed it");
}

#[test]
fn the_command_line_refuses_bad_submissions_moves_money_cancels_open_tasks_and_stakes() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let (dir, spec_path) = sum_spec(AUCTION, "policy = \"none\"");
    let poor = dir.path().join("poor.key");
    let key = SecretKey::from_name("market-test-poor");
    let sealed = Keystore::seal(&key, "", ogpu_core::keystore::Kdf::DEVNET, &mut rand_core::OsRng).unwrap();
    std::fs::write(&poor, sealed.to_json()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ogpu"))
        .args(["task", "submit", spec_path.to_str().unwrap(), "--api", &devnet.api, "--key", poor.to_str().unwrap()])
        .env("OGPU_PASSWORD", "")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "refused: {output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("too little balance"), "{output:?}");

    let malformed = dir.path().join("malformed.toml");
    std::fs::write(&malformed, "name = \"x\"\n[workload]\nkind = \"quantum\"\n").unwrap();
    let output = devnet.ogpu(&["task", "submit", malformed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "usage: {output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid task spec"), "{output:?}");

    let tasks = devnet.client.tasks(&Default::default()).unwrap();
    assert!(tasks.tasks.is_empty(), "nothing was submitted: {:?}", tasks.tasks);
    let client = Address::of(&devnet.client_key().public());
    assert_eq!(devnet.balance(&client), Amount::ogpu(1_000_000), "nothing was reserved or spent");

    // The wallet: a transfer to the poor key, then one it cannot pay, which the chain refuses.
    let poor_address = Address::of(&key.public()).to_string();
    let output = devnet.ogpu(&["wallet", "send", &poor_address, "5"]);
    assert!(output.status.success(), "{output:?}");
    let poor_wallet = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ogpu"))
            .args(["wallet", "--api", &devnet.api, "--key", poor.to_str().unwrap(), "-o", "json"])
            .args(args)
            .env("OGPU_PASSWORD", "")
            .output()
            .unwrap()
    };
    let output = poor_wallet(&["send", &client.to_string(), "100"]);
    assert_eq!(output.status.code(), Some(3), "refused on chain: {output:?}");
    let balance = |output: Output| -> serde_json::Value { serde_json::from_slice(&output.stdout).unwrap() };
    let poor_balance = balance(poor_wallet(&["balance"]));
    let fee = devnet.client.params().unwrap().min_fee;
    let left = Amount::ogpu(5).checked_sub(fee).unwrap().to_string();
    assert_eq!(poor_balance["balance"], left.as_str(), "the refused transfer cost its fee: {poor_balance}");
    let history = balance(poor_wallet(&["history"]));
    assert_eq!(history["txs"][0]["kind"], "transfer", "{history}");
    assert!(history["txs"][0]["error"].is_string(), "the refusal is in the history: {history}");

    // A provider's stake shows as staked, not as available.
    let provider = devnet.provider_address(0).to_string();
    let staked = balance(devnet.ogpu(&["wallet", "balance", &provider, "-o", "json"]));
    let staked: Amount = staked["staked"].as_str().unwrap().parse().unwrap();
    assert!(staked >= Amount::ogpu(500), "{staked}");

    // A task no provider here can run waits for bids; its client lists it and cancels it,
    // and a second cancel is refused by the chain.
    let open_auction = "kind = \"auction\"\nmax_price = \"0.01\"\nbid_window = 30";
    let (_dir, unbiddable) = sum_spec(open_auction, "policy = \"none\"\n[requirements]\ngpus = 8");
    let output = devnet.ogpu(&["task", "submit", unbiddable.to_str().unwrap(), "--no-wait"]);
    assert_success(&output);
    let id = submitted_id(&output).to_string();
    let listed = balance(devnet.ogpu(&["task", "list", "-o", "json"]));
    assert_eq!(listed["tasks"][0]["id"], id.as_str(), "{listed}");
    let auctions = devnet.ogpu(&["auction", "list"]);
    assert_success(&auctions);
    let line = String::from_utf8_lossy(&auctions.stdout).lines().find(|l| l.starts_with(&id)).map(str::to_owned);
    assert!(line.as_deref().is_some_and(|l| l.contains("8 GPU(s)") && l.contains("0 bid(s)")), "{auctions:?}");
    let held = balance(devnet.ogpu(&["wallet", "balance", "-o", "json"]));
    assert_ne!(held["escrow"], "0", "the open task holds escrow: {held}");
    // Its client raises the cap: 0.01 -> 0.02 reserves 0.0117 more in escrow (0.01 and the
    // 2% protocol fee for the executor, 5% of 0.01 for each of 3 dispute verifiers) and
    // 0.001 more trust lock (10%). A cap that is not higher is refused by the chain.
    let raised = balance(devnet.ogpu(&["task", "top-up", &id, "--max-price", "0.02", "-o", "json"]));
    assert_eq!(raised["price_cap"], "0.02", "{raised}");
    let amount = |value: &serde_json::Value, key: &str| value[key].as_str().unwrap().parse::<Amount>().unwrap();
    let more = |key: &str, by: &str| amount(&held, key).checked_add(by.parse().unwrap()).unwrap();
    assert_eq!(
        (amount(&raised, "escrow"), amount(&raised, "trust_lock")),
        (more("escrow", "0.0117"), more("trust_lock", "0.001"))
    );
    let lower = devnet.ogpu(&["task", "top-up", &id, "--max-price", "0.015"]);
    assert_eq!(lower.status.code(), Some(3), "{lower:?}");
    assert!(String::from_utf8_lossy(&lower.stderr).contains("must raise the price cap"), "{lower:?}");
    assert_success(&devnet.ogpu(&["task", "cancel", &id]));
    let again = devnet.ogpu(&["task", "cancel", &id]);
    assert_eq!(again.status.code(), Some(3), "{again:?}");
    let held = balance(devnet.ogpu(&["wallet", "balance", "-o", "json"]));
    assert_eq!((&held["escrow"], &held["trust_lock"]), (&"0".into(), &"0".into()), "all back: {held}");

    // Stake: refused as a provider it is not; as a validator it locks, then unbonds.
    let refused = devnet.ogpu(&["stake", "add", "provider", "10"]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let min = devnet.client.params().unwrap().min_validator_stake.to_string();
    assert_success(&devnet.ogpu(&["stake", "add", "validator", &min]));
    let staked = balance(devnet.ogpu(&["stake", "status", "-o", "json"]));
    assert_eq!(staked["staked"], min.as_str(), "{staked}");
    assert_success(&devnet.ogpu(&["stake", "unstake", "validator", &min]));
    let unbonding = balance(devnet.ogpu(&["stake", "status", "-o", "json"]));
    assert_eq!((&unbonding["staked"], &unbonding["unbonding"]), (&"0".into(), &min.as_str().into()), "{unbonding}");
}

/// `ogpu gov`: the parameters as the chain has them; a validator proposes a change and
/// another votes on it; a non-validator, an unknown parameter and a second vote are refused.
#[test]
fn validators_propose_and_vote_on_parameters_from_the_command_line() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let json = |output: Output| -> serde_json::Value {
        assert_success(&output);
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let params = json(devnet.ogpu(&["gov", "params", "-o", "json"]));
    assert_eq!(params["min_fee"], devnet.client.params().unwrap().min_fee.to_string().as_str(), "{params}");
    let table = devnet.ogpu(&["gov", "params"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("max_auction_rounds"), "{table:?}");

    let not_a_validator = devnet.ogpu(&["gov", "propose", "max_auction_rounds", "5"]);
    assert_eq!(not_a_validator.status.code(), Some(3), "{not_a_validator:?}");
    let unknown = devnet.ogpu(&["gov", "propose", "max_auction_round", "5"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("max_auction_rounds"),
        "names the parameters: {unknown:?}"
    );

    let validator_key = |i: usize| devnet.path().join(format!("validator-{i}/validator.key"));
    let validator = |i: usize, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ogpu"))
            .args(args)
            .args(["-o", "json", "--api", &devnet.api, "--key"])
            .arg(validator_key(i))
            .env("OGPU_PASSWORD", "")
            .output()
            .unwrap()
    };
    // A devnet's validators stake all they have: the client pays for their transactions.
    for i in 0..2 {
        let key = Keystore::from_json(&std::fs::read_to_string(validator_key(i)).unwrap()).unwrap();
        let address = Address::of(&key.open("").unwrap().public()).to_string();
        assert_success(&devnet.ogpu(&["wallet", "send", &address, "1"]));
    }
    let proposed = json(validator(0, &["gov", "propose", "min_fee", "0.002"]));
    let id = proposed["proposal"].as_str().unwrap().to_string();
    json(validator(1, &["gov", "vote", &id, "no"]));
    let again = validator(1, &["gov", "vote", &id, "yes"]);
    assert_eq!(again.status.code(), Some(3), "one vote each: {again:?}");

    let listed = json(devnet.ogpu(&["gov", "list", "-o", "json"]));
    let (listed_id, proposal) = (&listed["proposals"][0]["id"], &listed["proposals"][0]["proposal"]);
    assert_eq!((listed_id.as_str(), &proposal["change"]["key"]), (Some(id.as_str()), &"min_fee".into()));
    let votes = proposal["votes"].as_object().unwrap();
    assert_eq!(votes.values().filter(|v| **v == true).count(), 1, "the proposer's own: {proposal}");
    assert_eq!(votes.values().filter(|v| **v == false).count(), 1, "{proposal}");
    let table = devnet.ogpu(&["gov", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("set min_fee to 0.002 oGPU"), "{table:?}");
}
