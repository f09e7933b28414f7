//! `ogpu bench`: throughput measurements, each printed as one JSON object.
//!
//! `bench chain` measures signed transfers applied by `apply_block` (signature checks,
//! execution and the state root included) against single-core ed25519 verification in
//! the same run, so the ratio shows whether signatures or the state machine bound
//! throughput.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;
use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_chain::{Genesis, Params, apply_block, propose_block};
use ogpu_client::Client;
use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount, SecretKey, crypto};
use ogpu_runtime::Libraries;
use serde_json::json;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Blob upload and download through the API, and a fetch between two nodes over
    /// libp2p, against loopback TCP in the same run.
    Blobs {
        /// Print one JSON object (the only output format for now).
        #[arg(long)]
        json: bool,
        /// The blob's size in MiB (at most the chain's max_blob_bytes).
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
    /// Finalized transfers per second on a local devnet of separate processes.
    Devnet {
        /// Print one JSON object (the only output format for now).
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Transfers offered per second.
        #[arg(long, default_value_t = 4_000)]
        rate: u64,
    },
    /// Market latency on a devnet: submission to execution start in auctions and pools,
    /// and the market's overhead around a long task.
    Market {
        /// Print one JSON object (the only output format for now).
        #[arg(long)]
        json: bool,
        /// Tasks measured per figure.
        #[arg(long, default_value_t = 20)]
        tasks: usize,
        /// Compute time of each task the overhead is measured on.
        #[arg(long, default_value_t = 10)]
        task_seconds: u64,
        /// The devnet's minimum block interval.
        #[arg(long, default_value_t = crate::devnet::BLOCK_MS)]
        block_ms: u64,
    },
    /// Simulated finality of Snowman over the ten-region latency matrix.
    Consensus {
        /// Print one JSON object (the only output format for now).
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        validators: usize,
        /// Independent runs; their blocks are pooled for the percentiles.
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Consecutive successful polls to accept (default: the engine's).
        #[arg(long)]
        beta: Option<u32>,
        /// Polls in flight (default: the engine's).
        #[arg(long)]
        polls: Option<usize>,
        /// Simulated seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Training and inference throughput of the AI runtimes on this machine (compare with
    /// PyTorch and onnxruntime: bench/compare-runtime.sh).
    Runtime {
        /// Print one JSON object (the only output format for now).
        #[arg(long)]
        json: bool,
        /// The shared data directory; MiniLM is read from DATA/minilm.
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// Where training runs: cpu, wgpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// A libonnxruntime.so, to measure `engine=ort` as well as tract.
        #[arg(long, env = "OGPU_ONNXRUNTIME")]
        onnxruntime: Option<PathBuf>,
    },
    /// What the container sandbox adds to a command's start and to a long compute,
    /// against running it directly.
    Container {
        /// Print one JSON object (the only output format for now).
        #[arg(long)]
        json: bool,
        /// How long the compute figure's command runs, directly.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Transfers per second through apply_block, against ed25519 verifications per second.
    Chain {
        /// Print one JSON object (the only output format for now).
        #[arg(long)]
        json: bool,
        /// Accounts sending transfers.
        #[arg(long, default_value_t = 2_000)]
        senders: usize,
        /// Timed repetitions per block size; the median is reported.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Chain { json: _, senders, rounds } => chain(senders, rounds),
        BenchCommand::Blobs { json: _, mib } => crate::bench_blobs::run(mib),
        BenchCommand::Devnet { json: _, validators, seconds, rate } => devnet(validators, seconds, rate),
        BenchCommand::Market { json: _, tasks, task_seconds, block_ms } => {
            crate::bench_market::run(tasks, task_seconds, block_ms)
        }
        BenchCommand::Runtime { json: _, data, device, onnxruntime } => {
            crate::bench_runtime::run(&data, &device, &Libraries { onnxruntime, ..Libraries::default() })
        }
        BenchCommand::Container { json: _, seconds } => crate::bench_container::run(seconds),
        BenchCommand::Consensus { json: _, validators, seeds, beta, polls, seconds } => {
            consensus(validators, seeds, beta, polls, seconds)
        }
    }
}

fn consensus(validators: usize, seeds: u64, beta: Option<u32>, polls: Option<usize>, seconds: u64) -> Result<()> {
    let mut params = ogpu_consensus::Params::default();
    params.beta = beta.unwrap_or(params.beta);
    params.concurrent_polls = polls.unwrap_or(params.concurrent_polls);
    params.validate()?;
    let (mut finality, mut floor, mut messages, mut blocks, mut violations) = (vec![], vec![], 0u64, 0usize, 0u64);
    for seed in 0..seeds {
        let mut config = ogpu_sim::Config::new(validators, seed);
        config.params = params;
        config.duration_ms = seconds * 1_000;
        let report = ogpu_sim::run(config)?;
        finality.extend(&report.finality_ms);
        floor.extend(&report.rtt_floor_ms);
        messages += report.messages;
        blocks += report.finalized_blocks();
        violations += report.safety_violations;
    }
    let p50 = ogpu_sim::percentile(&finality, 50.0);
    let floor_p50 = ogpu_sim::percentile(&floor, 50.0);
    let report = json!({
        "validators": validators,
        "seeds": seeds,
        "k": params.k,
        "alpha_pref": params.alpha_pref,
        "alpha_conf": params.alpha_conf,
        "beta": params.beta,
        "polls": params.concurrent_polls,
        "blocks": blocks,
        "finality_p50_ms": p50.round(),
        "finality_p99_ms": ogpu_sim::percentile(&finality, 99.0).round(),
        "rtt_floor_ms": floor_p50.round(),
        "finality_over_floor": (p50 / floor_p50 * 100.0).round() / 100.0,
        "messages_per_block": (messages as f64 / blocks.max(1) as f64).round(),
        "safety_violations": violations,
    });
    println!("{report}");
    Ok(())
}

fn chain(senders: usize, rounds: usize) -> Result<()> {
    let verify_per_s = ed25519_verify_per_s(20_000);
    let batch_per_s = ed25519_batch_verify_per_s(10_000, rounds.max(1));
    let mut report = json!({
        "ed25519_verify_per_s": verify_per_s.round(),
        "ed25519_batch_verify_per_s": batch_per_s.round(),
        "senders": senders,
    });
    for size in [1_000, 10_000] {
        let tps = transfers_per_s(senders, size, rounds.max(1))?;
        report[format!("transfers_per_s_block_{size}")] = json!(tps.round());
        report[format!("ratio_to_verify_block_{size}")] = json!((tps / verify_per_s * 1000.0).round() / 1000.0);
    }
    report["transfers_per_s"] = report["transfers_per_s_block_10000"].clone();
    report["ratio"] = report["ratio_to_verify_block_10000"].clone();
    println!("{report}");
    Ok(())
}

fn ed25519_verify_per_s(count: usize) -> f64 {
    let key = SecretKey::from_name("bench");
    let messages: Vec<Vec<u8>> = (0..count as u64).map(|i| i.to_le_bytes().repeat(16)).collect();
    let signatures: Vec<_> = messages.iter().map(|m| key.sign(m)).collect();
    let public = key.public();
    let start = Instant::now();
    for (message, signature) in messages.iter().zip(&signatures) {
        public.verify(message, signature).expect("bench signatures verify");
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Signatures per second checked the way `apply_block` checks a block's: one batch.
fn ed25519_batch_verify_per_s(count: usize, rounds: usize) -> f64 {
    let keys: Vec<SecretKey> = (0..count).map(|i| SecretKey::from_name(&format!("batch-{i}"))).collect();
    let messages: Vec<Vec<u8>> = (0..count as u64).map(|i| i.to_le_bytes().repeat(16)).collect();
    let signatures: Vec<_> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let publics: Vec<_> = keys.iter().map(SecretKey::public).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    median((0..rounds).map(|_| {
        let start = Instant::now();
        crypto::verify_batch(&refs, &signatures, &publics).expect("bench signatures verify");
        count as f64 / start.elapsed().as_secs_f64()
    }))
}

/// The middle of `samples` (the upper one of an even count): what every bench reports
/// from its rounds on a shared, noisy machine.
pub(crate) fn median(samples: impl IntoIterator<Item = f64>) -> f64 {
    let mut samples: Vec<f64> = samples.into_iter().collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median transfers per second for blocks of `size` transfers spread over `senders`.
fn transfers_per_s(senders: usize, size: usize, rounds: usize) -> Result<f64> {
    let keys: Vec<SecretKey> = (0..senders).map(|i| SecretKey::from_name(&format!("sender-{i}"))).collect();
    let validator = SecretKey::from_name("bench-validator");
    let genesis = Genesis {
        chain_id: "ogpu-bench".parse()?,
        genesis_time_ms: 0,
        params: Params::default(),
        allocations: keys
            .iter()
            .map(|k| Allocation { address: Address::of(&k.public()), amount: Amount::ogpu(1_000) })
            .collect(),
        validators: vec![GenesisValidator { public_key: validator.public(), stake: Amount::ogpu(10_000) }],
    };
    let state = genesis.into_state()?;
    let fee = state.params.min_fee;
    let txs: Vec<Transaction> = (0..size)
        .map(|i| {
            let sender = &keys[i % senders];
            let to = Address::of(&keys[(i + 1) % senders].public());
            let body = TxBody::Transfer { to, amount: Amount::from_base_units(1 + i as u128) };
            Transaction::sign(sender, state.chain_id.clone(), (i / senders) as u64, fee, body)
        })
        .collect();
    let (block, _, outcome) = propose_block(&state, &validator, 1, txs)?;
    anyhow::ensure!(outcome.receipts.iter().all(|r| r.result.is_ok()), "every bench transfer must apply");
    Ok(median((0..rounds).map(|_| {
        let start = Instant::now();
        let (next, _) = apply_block(&state, &block).expect("the bench block applies");
        let rate = size as f64 / start.elapsed().as_secs_f64();
        drop(next);
        rate
    })))
}

/// Senders the devnet bench spreads its load over.
const DEVNET_SENDERS: usize = 400;
/// Load is offered in batches this often.
const BATCH_EVERY_MS: u64 = 100;

fn status(api: &Client) -> Option<ogpu_client::types::Status> {
    api.status().ok()
}

/// Starts a devnet, offers `rate` signed transfers per second from many senders for
/// `seconds`, and reports what was finalized and how long it took.
fn devnet(validators: usize, seconds: u64, rate: u64) -> Result<()> {
    let data = std::env::temp_dir().join(format!("ogpu-bench-devnet-{}", std::process::id()));
    let api: std::net::SocketAddr =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()).parse()?;
    let mut devnet = std::process::Command::new(std::env::current_exe()?)
        .args([
            "devnet",
            "--dashboard",
            "127.0.0.1:0",
            "--validators",
            &validators.to_string(),
            "--api",
            &api.to_string(),
            "--fund",
            &DEVNET_SENDERS.to_string(),
            "--providers",
            "0",
            "--data",
        ])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let outcome = load_devnet(&Client::new(&format!("http://{api}"))?, &data, seconds, rate);
    let _ = std::process::Command::new("kill").args(["-INT", &devnet.id().to_string()]).status();
    let _ = devnet.wait();
    let _ = std::fs::remove_dir_all(&data);
    let mut report = outcome?;
    report["validators"] = json!(validators);
    report["ed25519_verify_per_s"] = json!(ed25519_verify_per_s(20_000).round());
    println!("{report}");
    Ok(())
}

/// Offers the pre-signed transactions in batches on schedule; returns, per batch, when it
/// was sent and how many were accepted up to and including it.
fn submit_batches(api: &Client, signed: &[String], per_batch: usize, start: Instant) -> Result<Vec<(f64, u64)>> {
    let mut submitted_at = Vec::new();
    let mut accepted = 0u64;
    for (b, chunk) in signed.chunks(per_batch).enumerate() {
        let due = std::time::Duration::from_millis(b as u64 * BATCH_EVERY_MS);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let sent_at = start.elapsed().as_secs_f64();
        accepted += api.submit_encoded_batch(chunk.to_vec())?.accepted as u64;
        submitted_at.push((sent_at, accepted));
    }
    Ok(submitted_at)
}

fn load_devnet(api: &Client, data: &std::path::Path, seconds: u64, rate: u64) -> Result<serde_json::Value> {
    let started = Instant::now();
    while status(api).map_or(0, |s| s.finalized_height) < 1 {
        anyhow::ensure!(started.elapsed().as_secs() < 60, "the devnet did not start finalizing within a minute");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let genesis = ogpu_chain::Genesis::from_toml(&std::fs::read_to_string(data.join("genesis.toml"))?)?;
    let senders: Vec<SecretKey> = (0..DEVNET_SENDERS).map(crate::devnet::bench_sender).collect();
    let batches = seconds * 1_000 / BATCH_EVERY_MS;
    let per_batch = (rate * BATCH_EVERY_MS / 1_000).max(1) as usize;
    let mut nonces = vec![0u64; senders.len()];
    // Sign everything first so that signing does not slow the offered load.
    let signed: Vec<String> = (0..batches as usize * per_batch)
        .map(|i| {
            let s = i % senders.len();
            let body = TxBody::Transfer { to: Address([1; 20]), amount: Amount::from_base_units(1) };
            let tx = Transaction::sign(&senders[s], genesis.chain_id.clone(), nonces[s], genesis.params.min_fee, body);
            nonces[s] += 1;
            ogpu_core::hex::encode(&ogpu_core::encoding::Canonical::encode(&tx))
        })
        .collect();
    let base = status(api).map_or(0, |s| s.finalized_txs);
    let start = Instant::now();
    // Finalization is watched while the load is offered: a sample of the finalized count
    // every few milliseconds, so each batch's finality is the first sample covering it.
    let done = std::sync::atomic::AtomicBool::new(false);
    let (submitted_at, samples) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(count) = status(api).map(|s| s.finalized_txs) {
                    samples.push((start.elapsed().as_secs_f64(), count.saturating_sub(base)));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            samples
        });
        let submitted_at = submit_batches(api, &signed, per_batch, start);
        // Let what was accepted drain, for at most ten more seconds.
        let accepted = submitted_at.as_ref().map_or(0, |s| s.last().map_or(0, |(_, n)| *n));
        while start.elapsed().as_secs() < seconds + 10
            && status(api).map_or(0, |s| s.finalized_txs).saturating_sub(base) < accepted
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (submitted_at, watcher.join().unwrap_or_default())
    });
    let submitted_at = submitted_at?;
    let accepted = submitted_at.last().map_or(0, |(_, n)| *n);
    let mut latencies = Vec::new();
    let mut sample = samples.iter().peekable();
    for (at, cumulative) in &submitted_at {
        while sample.next_if(|(_, finalized)| finalized < cumulative).is_some() {}
        if let Some((seen, _)) = sample.peek() {
            latencies.push((seen - at).max(0.0) * 1_000.0);
        }
    }
    let (last_at, finalized) = samples.last().copied().unwrap_or_default();
    // Throughput over the time until the last finalization, not until the watcher stopped.
    let busy = samples.iter().find(|(_, n)| *n == finalized).map_or(last_at, |(t, _)| *t).max(1e-3);
    Ok(json!({
        "offered_tps": rate,
        "seconds": seconds,
        "accepted": accepted,
        "finalized": finalized,
        "finalized_tps": (finalized as f64 / busy).round(),
        "finality_p50_ms": ogpu_sim::percentile(&latencies, 50.0).round(),
        "finality_p99_ms": ogpu_sim::percentile(&latencies, 99.0).round(),
    }))
}
