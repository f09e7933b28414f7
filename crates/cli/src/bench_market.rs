//! `ogpu bench market`: how long the market takes around the compute, on a devnet of
//! separate processes (3 validators, 3 provider agents).
//!
//! - `auction_start_ms`: from handing an auction task (1-block bid window) to the API to
//!   the winner's signed `started` log entry;
//! - `pool_start_ms`: the same for a pool job, to the first racer's `started`;
//! - `overhead_pct`: for tasks that compute for `--task-seconds`, the client's time from
//!   submission to the task's end on chain, less the compute time (the winner's
//!   `started` to `finished` entries), over the compute time.
//!
//! Times cross processes on one machine, so one clock serves them all.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use ogpu_chain::state::Phase;
use ogpu_client::wallet::{Verdict, Wallet};
use ogpu_client::{Client, ClientError};
use ogpu_core::keystore::Keystore;
use ogpu_core::spec::{Limits, PoolSpec, Ratio, TaskSpec, WorkloadKind};
use ogpu_core::tasklog::{LogBody, SignedLogEntry};
use ogpu_core::tx::TxBody;
use ogpu_core::{Amount, BlobHash, PoolId, TaskId};
use ogpu_runtime::WasmRuntime;
use serde_json::json;

use crate::bench_runtime::run_job;

const SUM: &[u8] = include_bytes!("../../../examples/wasm-sum.wat");
const NUMBERS: &[u8] = include_bytes!("../../../examples/numbers.txt");
const SPIN: &[u8] = include_bytes!("../../../examples/wasm-spin.wat");
/// Provider agents on the devnet.
const PROVIDERS: usize = 3;
/// Fuel and memory for the bench's tasks, and the time limit for the long ones.
const LIMITS: Limits = Limits { fuel: 1_000_000_000_000, memory_mb: 16, timeout_s: 600 };

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn percentile(mut values: Vec<u64>, p: f64) -> u64 {
    values.sort_unstable();
    values.get(((values.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
}

struct Bench {
    client: Client,
    wallet: Wallet,
}

impl Bench {
    fn upload(&self, bytes: &[u8]) -> Result<BlobHash> {
        Ok(self.client.upload_blob(bytes)?.0)
    }

    /// Submits `spec`; returns the task and the wall time just before it was sent.
    fn submit(&self, spec: &TaskSpec) -> Result<(TaskId, u64)> {
        let sent = now_ms();
        let hash = self.wallet.send(TxBody::SubmitTask { spec: spec.clone() })?;
        Ok((TaskId(hash), sent))
    }

    fn logs(&self, id: &TaskId) -> Result<Vec<SignedLogEntry>, ClientError> {
        Ok(self.client.task_logs(id, 0)?.entries)
    }

    fn phase(&self, id: &TaskId) -> Option<Phase> {
        self.client.task(id).ok().map(|detail| detail.view.task.phase)
    }

    /// The earliest time a provider said it started on `id`, waiting up to `timeout`;
    /// `None` when the task ended without anyone starting (no bid made its window).
    fn started_at(&self, id: &TaskId, timeout: Duration) -> Result<Option<u64>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let logs = match self.logs(id) {
                Ok(logs) => logs,
                // Not on chain yet.
                Err(error) if error.api_error() == Some("unknown_task") => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            let started = logs.iter().filter(|e| e.entry.body == LogBody::Started).map(|e| e.entry.time_ms).min();
            if started.is_some() {
                return Ok(started);
            }
            if let Some(Phase::Done(_)) = self.phase(id) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("no provider started task {id} within {timeout:?}")
    }

    /// Waits for `id` to end; returns when the client saw it end.
    fn ended_at(&self, id: &TaskId, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Phase::Done(outcome)) = self.phase(id) {
                let at = now_ms();
                return match outcome {
                    ogpu_chain::state::Outcome::Completed { .. } => Ok(at),
                    other => bail!("task {id} ended without completing: {other:?}"),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("task {id} did not end within {timeout:?}")
    }

    /// Compute time of the run that finished first: its `started` to its `finished`.
    fn compute_ms(&self, id: &TaskId) -> Result<u64> {
        let logs = self.logs(id)?;
        let finished =
            logs.iter().find(|e| matches!(e.entry.body, LogBody::Finished { .. })).context("no finished entry")?;
        let started = logs
            .iter()
            .find(|e| e.entry.body == LogBody::Started && e.entry.provider == finished.entry.provider)
            .context("no started entry")?;
        Ok(finished.entry.time_ms.saturating_sub(started.entry.time_ms))
    }
}

/// A wasm task whose deadline spans its time limit at `block_ms` a block, so the chain does
/// not time out a run the runtime would still let go on.
fn spec(name: &str, program: BlobHash, inputs: &str, args: &str, market: &str, block_ms: u64) -> Result<TaskSpec> {
    let Limits { fuel, memory_mb, timeout_s } = LIMITS;
    let deadline_blocks = u64::from(timeout_s) * 1000 / block_ms.max(1);
    let text = format!(
        "name = \"{name}\"\ndeadline_blocks = {deadline_blocks}\n[workload]\nkind = \"wasm\"\nprogram = \"{program}\"\n\
         inputs = {{ {inputs} }}\nargs = [{args}]\n\
         limits = {{ fuel = {fuel}, memory_mb = {memory_mb}, timeout_s = {timeout_s} }}\n\
         [market]\n{market}\n[verification]\npolicy = \"none\"\n"
    );
    Ok(TaskSpec::from_toml(&text)?)
}

/// Steps of `wasm-spin` per second on this machine, measured on the runtime the providers
/// run it on, so that a long task computes for about the seconds asked whatever the CPU.
fn spin_steps_per_second() -> Result<u64> {
    const STEPS: u64 = 1_000_000_000;
    let started = Instant::now();
    let args = [STEPS.to_string()];
    run_job(&WasmRuntime::new()?, WorkloadKind::Wasm, SPIN, &[], &args, LIMITS, &|_| {})?;
    Ok((STEPS as f64 / started.elapsed().as_secs_f64()) as u64)
}

pub fn run(tasks: usize, task_seconds: u64, block_ms: u64) -> Result<()> {
    // Measured before the devnet starts, so that its start-up does not slow the measure.
    let spin_steps = task_seconds * spin_steps_per_second()?;
    let data = std::env::temp_dir().join(format!("ogpu-bench-market-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut devnet = std::process::Command::new(std::env::current_exe()?)
        .args(["devnet", "--dashboard", "127.0.0.1:0", "--validators", "3", "--providers", &PROVIDERS.to_string()])
        .args(["--api", &format!("127.0.0.1:{port}")])
        .args(["--block-ms", &block_ms.to_string(), "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let plan = Plan { tasks, task_seconds, spin_steps, block_ms };
    let report = measure(&format!("http://127.0.0.1:{port}"), &data, &plan);
    let _ = std::process::Command::new("kill").args(["-INT", &devnet.id().to_string()]).status();
    let _ = devnet.wait();
    let _ = std::fs::remove_dir_all(&data);
    println!("{}", report?);
    Ok(())
}

/// What to measure.
struct Plan {
    /// Tasks per figure.
    tasks: usize,
    /// Compute time of the long tasks, and the `wasm-spin` steps that take it.
    task_seconds: u64,
    spin_steps: u64,
    /// The devnet's minimum block interval.
    block_ms: u64,
}

fn measure(api: &str, data: &Path, plan: &Plan) -> Result<serde_json::Value> {
    let &Plan { tasks, task_seconds, spin_steps, block_ms } = plan;
    let client = Client::new(api)?;
    let started = Instant::now();
    let wallet = loop {
        // The devnet writes the client key, then its API comes up.
        let key = std::fs::read_to_string(data.join("client.key")).ok().and_then(|t| Keystore::from_json(&t).ok());
        if let Some(wallet) = key.and_then(|k| k.open("").ok()).and_then(|k| Wallet::new(k, client.clone()).ok()) {
            break wallet;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the devnet did not come up within a minute");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let bench = Bench { client, wallet };
    let (sum, numbers, spin) = (bench.upload(SUM)?, bench.upload(NUMBERS)?, bench.upload(SPIN)?);
    let pool = PoolSpec {
        name: "bench".into(),
        kind: WorkloadKind::Wasm,
        model: sum,
        price_per_job: Amount::from_base_units(10u128.pow(15)),
        verification_rate: Ratio(0),
        min_stake: Amount::ogpu(10),
    };
    let hash = bench.wallet.send(TxBody::CreatePool { spec: pool })?;
    if bench.wallet.wait(&hash, "the pool", Duration::from_secs(60))? != Verdict::Applied {
        bail!("the pool was refused");
    }
    // The agents register, stake, then join the pool: once all three are in, all are ready.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if bench.client.pool(&PoolId(hash))?.pool.subscribers.len() == 3 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the three providers did not join the pool within two minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let inputs = format!("\"numbers.txt\" = \"{numbers}\"");
    let auction = "kind = \"auction\"\nmax_price = \"0.01\"\nbid_window = 1";
    let sum_auction = spec("sum", sum, &inputs, "", auction, block_ms)?;
    let pool_market = format!("kind = \"pool\"\npool = \"{}\"", PoolId(hash));
    let sum_pool = spec("sum", sum, &inputs, "", &pool_market, block_ms)?;

    let mut auction_start = Vec::new();
    let mut pool_start = Vec::new();
    let mut unfilled = [0usize; 2];
    for (k, (spec, starts)) in
        [(&sum_auction, &mut auction_start), (&sum_pool, &mut pool_start)].into_iter().enumerate()
    {
        while starts.len() < tasks {
            let (id, sent) = bench.submit(spec)?;
            match bench.started_at(&id, Duration::from_secs(60))? {
                Some(at) => starts.push(at.saturating_sub(sent)),
                None => unfilled[k] += 1,
            }
            // The next task waits for this one to end, so every provider is free for it.
            let _ = bench.ended_at(&id, Duration::from_secs(120));
        }
    }

    // Waves of long tasks, one per core (at most one per provider) so that each computes
    // at full speed for the seconds asked: each is submitted once the one before it has
    // started, so that its auction finds free providers (an agent with one slot and a
    // pending bid does not bid again).
    let wave_size = std::thread::available_parallelism().map_or(1, |n| n.get()).min(PROVIDERS);
    let long = spec("spin", spin, "", &format!("\"{spin_steps}\""), auction, block_ms)?;
    let mut overheads = Vec::new();
    let mut compute = Vec::new();
    let mut long_unfilled = 0;
    while overheads.len() < tasks {
        let mut wave = Vec::new();
        for _ in 0..wave_size {
            let (id, sent) = bench.submit(&long)?;
            match bench.started_at(&id, Duration::from_secs(60))? {
                Some(_) => wave.push((id, sent)),
                None => long_unfilled += 1,
            }
        }
        for (id, sent) in wave {
            let ended = bench.ended_at(&id, Duration::from_secs(task_seconds * 10 + 120))?;
            let compute_ms = bench.compute_ms(&id)?.max(1);
            compute.push(compute_ms);
            overheads.push((ended - sent).saturating_sub(compute_ms) * 10_000 / compute_ms);
        }
    }
    Ok(json!({
        "tasks": tasks,
        "auction_start_p50_ms": percentile(auction_start.clone(), 0.5),
        "auction_start_p90_ms": percentile(auction_start, 0.9),
        "pool_start_p50_ms": percentile(pool_start.clone(), 0.5),
        "pool_start_p90_ms": percentile(pool_start, 0.9),
        // Tasks that ended with no start because no bid or commit made its window.
        "auction_unfilled": unfilled[0],
        "pool_unfilled": unfilled[1],
        "long_unfilled": long_unfilled,
        "long_tasks": overheads.len(),
        "compute_p50_ms": percentile(compute, 0.5),
        "overhead_pct": percentile(overheads.clone(), 0.5) as f64 / 100.0,
        "overhead_p90_pct": percentile(overheads, 0.9) as f64 / 100.0,
        "block_ms": block_ms,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_pick_the_nearest_rank() {
        assert_eq!(super::percentile(vec![5, 1, 3, 2, 4], 0.5), 3);
        assert_eq!(super::percentile(vec![5, 1, 3, 2, 4], 0.9), 5);
        assert_eq!(super::percentile(vec![], 0.5), 0);
    }
}
