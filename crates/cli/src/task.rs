//! `ogpu task`: what a client does with a task spec. `run-local` runs it on this
//! machine's runtimes, without the network, so a client can check a spec (and see its
//! output hash) before paying for it.
//!
//! A spec names its program and inputs by path (relative to the spec) or, for blobs
//! already in a store, by `blake3:` hash (see `ogpu_client::spec`). `submit` uploads the
//! files it names; `run-local` finds a `blake3:` blob by content under the blob directory
//! (by default the spec's own).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ogpu_chain::state::{Outcome, Phase, Task};
use ogpu_chain::{Event, Params, reservation};
use ogpu_client::spec::{ResolvedSpec, hash_file};
use ogpu_client::types::TaskView;
use ogpu_client::wallet::Wallet;
use ogpu_client::{Client, EventRecord, FeedItem, TaskFilter};
use ogpu_core::spec::{Market, TaskSpec};
use ogpu_core::tasklog::{LogBody, SignedLogEntry};
use ogpu_core::tx::TxBody;
use ogpu_core::{Address, Amount, BlobHash, Hash, TaskId};
use ogpu_runtime::{Job, Libraries, Progress, Runtimes};

use crate::client::{ClientArgs, Format, settle};
use crate::exit::{Refused, TaskFailed};

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Run the task in FILE on this machine and print its output hash.
    RunLocal {
        file: PathBuf,
        /// Where blobs the spec names by `blake3:` hash are found by content (default: the
        /// spec's directory, searched two levels deep).
        #[arg(long)]
        blobs: Option<PathBuf>,
        /// Copy the output files here (default: a temporary directory, removed).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A `libonnxruntime.so`, for onnx tasks that ask for `engine=ort`.
        #[arg(long, env = "OGPU_ONNXRUNTIME")]
        onnxruntime: Option<PathBuf>,
    },
    /// Upload the files the task names, reserve its price and submit it; then follow it
    /// until it settles (exit 0) or fails (non-zero, with the reason).
    Submit {
        file: PathBuf,
        /// Print the task id once it is on chain, and do not wait.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show a task: its phase, executors and history.
    Get { id: String },
    /// List tasks: the signing key's, or another client's, or everyone's.
    List {
        /// Another client than the signing key's.
        #[arg(long, conflicts_with = "all")]
        client: Option<Address>,
        /// Every client's tasks.
        #[arg(long)]
        all: bool,
        /// Only tasks in this phase: bidding, executing, revealing, racing, verifying,
        /// challengeable or done.
        #[arg(long)]
        phase: Option<String>,
    },
    /// Cancel a task before any provider sealed a bid for it; its escrow and trust lock
    /// come back.
    Cancel { id: String },
    /// Show the signed progress and log lines providers posted for a task.
    Logs {
        id: String,
        /// Keep printing new entries as they come.
        #[arg(long)]
        follow: bool,
    },
    /// Download a completed task's output files.
    Result {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(client: ClientArgs, command: TaskCommand) -> Result<()> {
    match command {
        TaskCommand::RunLocal { file, blobs, out, onnxruntime } => {
            let libraries = Libraries { onnxruntime };
            run_local(&file, blobs, out, &libraries, client.format)
        }
        TaskCommand::Submit { file, no_wait } => submit(&client, &file, no_wait),
        TaskCommand::Get { id } => get(&client, &parse_id(&id)?),
        TaskCommand::List { client: of, all, phase } => list(&client, of, all, phase),
        TaskCommand::Cancel { id } => cancel(&client, &parse_id(&id)?),
        TaskCommand::Logs { id, follow } => logs(&client, &parse_id(&id)?, follow),
        TaskCommand::Result { id, out } => result(&client, &parse_id(&id)?, &out),
    }
}

fn parse_id(text: &str) -> Result<TaskId> {
    Ok(TaskId(crate::client::parse_hash(text, "a task id")?))
}

/// Files this big are not hashed while looking for blobs.
const MAX_LOCAL_BLOB: u64 = 1 << 30;

/// Every file under `dir` (up to `depth` levels down) by its blake3 hash.
fn index_files(dir: &Path, depth: u32, found: &mut BTreeMap<BlobHash, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() && depth > 0 {
            index_files(&entry.path(), depth - 1, found)?;
        } else if kind.is_file() && entry.metadata()?.len() <= MAX_LOCAL_BLOB {
            found.entry(hash_file(&entry.path())?).or_insert(entry.path());
        }
    }
    Ok(())
}

/// The files a spec needs, found by hash: the program, then each named input. Those the
/// spec names by path are known; a `blake3:` blob is looked for under `dir`.
fn locate(
    spec: &TaskSpec,
    files: &BTreeMap<BlobHash, PathBuf>,
    dir: &Path,
) -> Result<(PathBuf, BTreeMap<String, PathBuf>)> {
    let mut found = files.clone();
    let needed = std::iter::once(&spec.workload.program).chain(spec.workload.inputs.values());
    if needed.clone().any(|hash| !found.contains_key(hash)) {
        index_files(dir, 2, &mut found)?;
    }
    let find = |what: &str, hash: &BlobHash| {
        found
            .get(hash)
            .cloned()
            .with_context(|| format!("no file under {} has the {what}'s hash {hash}", dir.display()))
    };
    let program = find("program", &spec.workload.program)?;
    let inputs = spec
        .workload
        .inputs
        .iter()
        .map(|(name, hash)| Ok((name.clone(), find(&format!("input {name:?}"), hash)?)))
        .collect::<Result<_>>()?;
    Ok((program, inputs))
}

/// The directory a spec's files are looked for in.
fn blob_dir(file: &Path, blobs: Option<PathBuf>) -> PathBuf {
    blobs.unwrap_or_else(|| file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

fn run_local(
    file: &Path,
    blobs: Option<PathBuf>,
    out: Option<PathBuf>,
    libraries: &Libraries,
    format: Format,
) -> Result<()> {
    let ResolvedSpec { spec, files } = crate::spec::load(file)?;
    let (program, inputs) = locate(&spec, &files, &blob_dir(file, blobs))?;
    let work = tempfile::tempdir()?;
    let (input_dir, output_dir) = (work.path().join("input"), work.path().join("output"));
    std::fs::create_dir_all(&input_dir)?;
    std::fs::create_dir_all(&output_dir)?;
    for (name, path) in &inputs {
        std::fs::copy(path, input_dir.join(name)).with_context(|| format!("staging input {name:?}"))?;
    }
    let program = std::fs::read(&program)?;
    let runtimes = Runtimes::with_defaults(libraries)?;
    let cancel = AtomicBool::new(false);
    let progress = |progress: Progress| match progress {
        Progress::Log(line) => eprintln!("| {}", printable(&line)),
        Progress::Step { done, total, metrics } => {
            let metrics: String = metrics.iter().map(|(name, value)| format!(" {name} {value:.4}")).collect();
            eprintln!("step {done}/{total}{metrics}");
        }
    };
    let job = Job {
        kind: spec.workload.kind,
        program: &program,
        inputs: &input_dir,
        output: &output_dir,
        args: &spec.workload.args,
        limits: spec.workload.limits,
        progress: &progress,
        cancel: &cancel,
    };
    let outcome = match runtimes.run(&job) {
        Ok(outcome) => outcome,
        Err(error) => return Err(TaskFailed(format!("{}: the task failed: {error}", spec.name)).into()),
    };
    if let Some(out) = &out {
        for file in &outcome.files {
            let target = out.join(&file.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(output_dir.join(&file.path), &target)?;
        }
    }
    match format {
        Format::Json => {
            let files: Vec<_> = outcome
                .files
                .iter()
                .map(|f| serde_json::json!({ "path": f.path, "size": f.size, "hash": f.hash }))
                .collect();
            let report = serde_json::json!({
                "name": spec.name,
                "output": outcome.output,
                "trace": outcome.trace,
                "compute_ms": outcome.compute_ms,
                "files": files,
            });
            println!("{report}");
        }
        Format::Table => {
            println!("{}: done in {} ms", spec.name, outcome.compute_ms);
            println!("output hash {}", outcome.output);
            if let Some(trace) = outcome.trace {
                println!("trace root  {} over {} checkpoints", trace.root, trace.checkpoints);
            }
            for file in &outcome.files {
                println!("  {} ({} bytes) {}", file.path, file.size, file.hash);
            }
        }
    }
    Ok(())
}

fn submit(args: &ClientArgs, file: &Path, no_wait: bool) -> Result<()> {
    let ResolvedSpec { spec, files } = crate::spec::load(file)?;
    let client = args.client()?;
    let wallet = Wallet::new(args.signing_key()?, client.clone())?;
    let params = client.params()?;
    for path in files.values() {
        let size = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
        if size > params.max_blob_bytes {
            let max = params.max_blob_bytes;
            bail!("{} is {size} bytes; the chain takes blobs of at most {max} bytes", path.display());
        }
    }
    let reserved = reserved(&client, &params, &spec)?;
    let balance = client.account(&wallet.address())?.balance;
    let table = args.format == Format::Table;
    if table {
        println!("{}: reserves {reserved} oGPU now (unused escrow comes back); balance {balance} oGPU", spec.name);
    }
    if balance < reserved {
        let holder = wallet.address();
        return Err(Refused(format!(
            "too little balance: the task reserves {reserved} oGPU and {holder} holds {balance} oGPU"
        ))
        .into());
    }
    for path in files.values() {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        client.upload_blob(file).with_context(|| format!("uploading {}", path.display()))?;
    }
    let id = TaskId(settle(&wallet, TxBody::SubmitTask { spec: spec.clone() }, "the task")?);
    match (no_wait, table) {
        (true, true) => println!("task {id} submitted"),
        (true, false) => println!("{}", serde_json::json!({ "task": id, "reserved": reserved })),
        (false, _) => {
            if table {
                println!("task {id} submitted; following it (Ctrl-C stops following, not the task)");
            }
            follow_until_settled(&client, &id, table)?;
        }
    }
    Ok(())
}

/// What submitting `spec` takes from the client's balance under the chain's parameters.
fn reserved(client: &Client, params: &Params, spec: &TaskSpec) -> Result<Amount> {
    let (price_cap, pooled) = match &spec.market {
        Market::Auction { max_price, .. } => (*max_price, false),
        Market::Pool { pool } => (client.pool(pool)?.pool.spec.price_per_job, true),
    };
    reservation(params, spec, price_cap, pooled).and_then(|r| r.total()).context("the reservation overflows")
}

/// Prints the task's chain events as they are finalized until it ends; fails unless it
/// completed.
fn follow_until_settled(client: &Client, id: &TaskId, table: bool) -> Result<()> {
    // Subscribe first, then read the task: an end finalized in between shows in one or the other.
    let events = client.events(Some(id))?;
    if let Some(outcome) = ended(&client.task(id)?.view.task) {
        return settled(id, &outcome, table);
    }
    for event in events {
        let Some(FeedItem::Chain { height, event }) = FeedItem::parse(&event?) else { continue };
        if table {
            println!("  #{height} {}", describe(&event));
        } else {
            println!("{}", serde_json::json!({ "height": height, "event": event }));
        }
        if let Event::TaskEnded { outcome, .. } = event {
            return settled(id, &outcome, table);
        }
    }
    bail!("the API closed the event stream before task {id} ended")
}

fn ended(task: &Task) -> Option<Outcome> {
    match &task.phase {
        Phase::Done(outcome) => Some(outcome.clone()),
        _ => None,
    }
}

fn settled(id: &TaskId, outcome: &Outcome, table: bool) -> Result<()> {
    match outcome {
        Outcome::Completed { output } => {
            if table {
                println!("task {id} completed: output {output}; fetch it with `ogpu task result {id} --out DIR`");
            }
            Ok(())
        }
        Outcome::Cancelled => Err(TaskFailed(format!("task {id} was cancelled")).into()),
        Outcome::Unfilled(report) => Err(TaskFailed(format!("task {id} found no provider: {report:?}")).into()),
        Outcome::Failed(reason) => Err(TaskFailed(format!("task {id} failed: {reason}")).into()),
    }
}

/// One line about a chain event, for people.
fn describe(event: &Event) -> String {
    match event {
        Event::TaskSubmitted { reserved, .. } => format!("submitted, {reserved} oGPU reserved"),
        Event::AuctionOpened { round, commit_end, reveal_end, .. } => {
            format!("auction round {round}: bids until #{commit_end}, reveals until #{reveal_end}")
        }
        Event::Awarded { provider, price, .. } => format!("awarded to {provider} at {price} oGPU"),
        Event::RaceOpened { round, commit_end, .. } => format!("race round {round}: commits until #{commit_end}"),
        Event::VerificationStarted { reason, verifiers, .. } => {
            format!("verification ({reason:?}) by {} verifier(s)", verifiers.len())
        }
        Event::Verdict { executor, pass, .. } => {
            format!("{executor} {}", if *pass { "passed" } else { "failed verification" })
        }
        Event::Slashed { who, amount, reason } => format!("{who} slashed {amount} oGPU ({reason:?})"),
        Event::Paid { to, amount, why, .. } => format!("paid {amount} oGPU to {to} ({why:?})"),
        Event::Refunded { amount, .. } => format!("refunded {amount} oGPU to the client"),
        Event::TaskEnded { outcome, .. } => format!("ended: {outcome:?}"),
        other => format!("{other:?}"),
    }
}

fn get(args: &ClientArgs, id: &TaskId) -> Result<()> {
    let client = args.client()?;
    let view = client.task(id)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    let task = &view.view.task;
    println!("task     {id} ({})", task.spec.name);
    println!("client   {}", task.client);
    println!("phase    {}", view.phase_name);
    println!("escrow   {} oGPU (cap {} per executor)", task.escrow, task.price_cap);
    for executor in &task.executors {
        println!("executor {} at {} oGPU: {:?}", executor.provider, executor.price, executor.stage);
    }
    for EventRecord { height, event } in &view.events {
        println!("  #{height} {}", describe(event));
    }
    Ok(())
}

fn list(args: &ClientArgs, of: Option<Address>, all: bool, phase: Option<String>) -> Result<()> {
    let client = match (of, all) {
        (_, true) => None,
        (Some(of), false) => Some(of),
        (None, false) => {
            Some(Address::of(&args.signing_key().context("name --client ADDRESS, --all or a key")?.public()))
        }
    };
    let listed = args.client()?.tasks(&TaskFilter { client, phase, limit: Some(1_000) })?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&listed)?);
        return Ok(());
    }
    for TaskView { id, task } in &listed.tasks {
        let market = match task.spec.market {
            Market::Auction { .. } => "auction",
            Market::Pool { .. } => "pool",
        };
        let name = printable(&task.spec.name);
        println!("{id} {:<14} {market:<7} escrow {:<10} {name}", task.phase.name(), task.escrow.to_string());
    }
    Ok(())
}

fn cancel(args: &ClientArgs, id: &TaskId) -> Result<()> {
    let wallet = Wallet::new(args.signing_key()?, args.client()?)?;
    settle(&wallet, TxBody::CancelTask { task: *id }, "the cancel")?;
    if args.format == Format::Json {
        println!("{}", serde_json::json!({ "task": id, "cancelled": true }));
    } else {
        println!("task {id} cancelled; its escrow and trust lock are back");
    }
    Ok(())
}

fn print_entry(entry: &SignedLogEntry, format: Format) -> Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string(entry)?);
        return Ok(());
    }
    println!("{}", render(entry));
    Ok(())
}

/// A log entry as one line for a terminal: what a provider wrote is shown with its
/// control characters escaped, so a line cannot move the cursor, clear the screen or
/// rewrite what was printed before it.
fn render(entry: &SignedLogEntry) -> String {
    let signed = if entry.verify().is_ok() { "" } else { " [BAD SIGNATURE]" };
    let e = &entry.entry;
    let what = match &e.body {
        LogBody::Log { stream, line } => format!("{stream}: {line}"),
        LogBody::Step { step, total, metrics } => {
            let total = total.map(|t| format!("/{t}")).unwrap_or_default();
            let metrics: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
            format!("step {step}{total} {}", metrics.join(" "))
        }
        LogBody::Started => "started".into(),
        LogBody::Finished { output } => format!("finished: output {output}"),
        LogBody::Failed { reason } => format!("failed: {reason}"),
    };
    format!("{} {} #{}{signed} {}", e.time_ms, Address::of(&e.provider), e.seq, printable(&what))
}

/// `text` with every control character (escape sequences, carriage returns, bells)
/// written out as an escape, and everything else as it is.
pub(crate) fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn logs(args: &ClientArgs, id: &TaskId, follow: bool) -> Result<()> {
    let client = args.client()?;
    if follow {
        for event in client.follow_task_logs(id)? {
            let event = event?;
            if let Ok(entry) = serde_json::from_str::<SignedLogEntry>(&event.data) {
                print_entry(&entry, args.format)?;
            }
        }
        return Ok(());
    }
    // Every kept entry, a page at a time.
    let mut from = 0;
    loop {
        let page = client.task_logs(id, from)?;
        if page.entries.is_empty() {
            return Ok(());
        }
        for entry in &page.entries {
            print_entry(entry, args.format)?;
        }
        from = page.next;
    }
}

fn result(args: &ClientArgs, id: &TaskId, out: &Path) -> Result<()> {
    let client = args.client()?;
    let task = client.task(id)?.view.task;
    let output: Hash = match ended(&task) {
        Some(Outcome::Completed { output }) => output,
        Some(other) => bail!("task {id} ended without a result: {other:?}"),
        None => bail!("task {id} has no accepted result yet (phase {})", task.phase.name()),
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = ogpu_client::transfer::fetch(&client, &output, out)?;
    if args.format == Format::Json {
        let files: Vec<_> =
            files.iter().map(|f| serde_json::json!({ "path": f.path, "size": f.size, "hash": f.hash })).collect();
        println!("{}", serde_json::json!({ "task": id, "output": output, "files": files }));
    } else {
        for file in &files {
            println!("{} ({} bytes)", out.join(&file.path).display(), file.size);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ogpu_core::tasklog::{LogBody, LogEntry};
    use ogpu_core::{Hash, SecretKey, TaskId};

    use super::*;

    /// Finding 20: log lines came from providers and were printed raw, so a provider could
    /// send terminal escapes to every client that watched its task.
    #[test]
    fn a_providers_control_characters_reach_the_terminal_escaped() {
        let line = "done\x1b[2J\x1b]0;pwned\x07\rfaked".to_string();
        let body = LogBody::Log { stream: "stdout".into(), line };
        let entry = LogEntry::sign(&SecretKey::from_name("p"), TaskId(Hash::ZERO), 0, 0, body);
        let shown = render(&entry);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.ends_with("stdout: done\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\rfaked"), "{shown}");
    }
}
