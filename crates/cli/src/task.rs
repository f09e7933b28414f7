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
use indicatif::ProgressBar;
use ogpu_chain::Event;
use ogpu_chain::state::Outcome;
use ogpu_client::spec::{ResolvedSpec, hash_file};
use ogpu_client::task::{Quote, TaskHandle, quote};
use ogpu_client::types::TaskView;
use ogpu_client::{EventRecord, TaskFilter, Wallet};
use ogpu_core::spec::{Market, TaskSpec};
use ogpu_core::tasklog::{LogBody, SignedLogEntry};
use ogpu_core::{Address, Amount, BlobHash, TaskId};
use ogpu_runtime::{ContainerSettings, Job, Libraries, Progress, Runtimes};

use crate::client::{ClientArgs, Format};
use crate::exit::TaskFailed;
use crate::progress::Bars;

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
    /// Cancel a task before any provider sealed a bid for it (or, for a pool job, before
    /// any commit); everything it reserved comes back, to the base unit.
    Cancel { id: String },
    /// Raise the price cap of a task still being auctioned (for the round under way and
    /// any later one); what the higher cap adds is reserved from the balance.
    TopUp {
        id: String,
        /// The new most an executor may be paid, in oGPU (above the current cap).
        #[arg(long)]
        max_price: Amount,
    },
    /// Show the signed progress and log lines providers posted for a task.
    Logs {
        id: String,
        /// Keep printing new entries as they come.
        #[arg(long)]
        follow: bool,
    },
    /// Hand a private task's keys to those of its executors and verifiers that lack them
    /// (`task submit` does it while it follows a task).
    Keys {
        id: String,
        /// Keep handing them out as workers are chosen, until the task ends.
        #[arg(long)]
        follow: bool,
    },
    /// Download a completed task's output files (a private task's opened with the
    /// signing key, which must be its client's).
    Result {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(client: ClientArgs, command: TaskCommand) -> Result<()> {
    match command {
        TaskCommand::RunLocal { file, blobs, out, onnxruntime } => {
            let libraries = Libraries { onnxruntime, image_cache: Some(image_cache()?) };
            run_local(&file, blobs, out, &libraries, client.format)
        }
        TaskCommand::Submit { file, no_wait } => submit(&client, crate::spec::load(&file)?, no_wait),
        TaskCommand::Get { id } => get(&client, &parse_id(&id)?),
        TaskCommand::List { client: of, all, phase } => list(&client, of, all, phase),
        TaskCommand::Cancel { id } => cancel(&client, &parse_id(&id)?),
        TaskCommand::TopUp { id, max_price } => top_up(&client, &parse_id(&id)?, max_price),
        TaskCommand::Logs { id, follow } => logs(&client, &parse_id(&id)?, follow),
        TaskCommand::Keys { id, follow } => keys(&client, &parse_id(&id)?, follow),
        TaskCommand::Result { id, out } => result(&client, &parse_id(&id)?, &out),
    }
}

/// Where `run-local` keeps container images unpacked: under the system's temporary
/// directory, one per user, which a sandbox run as `nobody` (when the user is root) can
/// reach, unlike a home directory. Others may pass through it but not list or write it;
/// one that is not this user's own, or that others may write, is refused (someone could
/// have made it first, to plant images or links in it).
fn image_cache() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    // The owner of this process's /proc entry is its user.
    let me = std::fs::metadata("/proc/self").context("reading /proc/self")?.uid();
    let dir = std::env::temp_dir().join(format!("ogpu-images-{me}"));
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        bail!("{} is not a directory of this user's that only it may write; remove it", dir.display());
    }
    Ok(dir)
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
    if spec.workload.blobs().any(|hash| !found.contains_key(&hash)) {
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
    let ResolvedSpec { spec, files, .. } = crate::spec::load(file)?;
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
        Progress::Step { done, total, metrics } => eprintln!("{}", step_line(done, Some(total), &metrics)),
    };
    let job = Job {
        kind: spec.workload.kind,
        program: &program,
        inputs: &input_dir,
        output: &output_dir,
        args: &spec.workload.args,
        container: ContainerSettings::of(&spec),
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

/// Submits a resolved spec: prints what it reserves, uploads what the store lacks, puts
/// it on chain and, unless `no_wait`, follows it to its end.
pub fn submit(args: &ClientArgs, resolved: ResolvedSpec, no_wait: bool) -> Result<()> {
    let wallet = args.wallet()?;
    let table = args.format == Format::Table;
    let Quote { reserved, balance } = quote(&wallet, &resolved.spec)?;
    if table {
        let name = printable(&resolved.spec.name);
        println!("{name}: reserves {reserved} oGPU now (unused escrow comes back); balance {balance} oGPU");
    }
    let mut bars = Bars::new();
    let task = ogpu_client::task::submit(&wallet, &resolved, |progress| bars.show(progress))?;
    let id = task.id();
    match (no_wait, table) {
        (true, true) if resolved.private => {
            println!("task {id} submitted; it is private: run `ogpu task keys {id} --follow` to hand out its keys");
        }
        (true, true) => println!("task {id} submitted"),
        (true, false) => println!("{}", serde_json::json!({ "task": id, "reserved": reserved })),
        (false, _) => {
            if table {
                println!("task {id} submitted; following it (Ctrl-C stops following, not the task)");
            }
            let outcome = follow(&task, &wallet, table)?;
            return settled(&id, &outcome, table);
        }
    }
    Ok(())
}

/// Prints the task's chain events as they are finalized, with a live line of the latest
/// step and its metrics beneath them (on a terminal), until the task ends; hands a private
/// task's keys to its workers as they are chosen.
fn follow(task: &TaskHandle, wallet: &Wallet, table: bool) -> Result<Outcome> {
    let line = ProgressBar::new_spinner();
    if table {
        let (steps, line) = (task.clone(), line.clone());
        // The step line follows the provider's log; the thread ends with the process.
        std::thread::spawn(move || {
            let Ok(progress) = steps.progress() else { return };
            for step in progress.map_while(Result::ok) {
                line.set_message(step_line(step.step, step.total, &step.metrics));
                line.tick();
            }
        });
    }
    let outcome = task.follow_delivering(wallet, None, |height, event| {
        if table {
            line.println(format!("  #{height} {}", describe(event)));
        } else {
            println!("{}", serde_json::json!({ "height": height, "event": event }));
        }
    })?;
    line.finish_and_clear();
    Ok(outcome)
}

/// `step 150/1200 loss 0.3102 ...`, for a terminal.
fn step_line(step: u64, total: Option<u64>, metrics: &[(impl std::fmt::Display, f64)]) -> String {
    let total = total.map(|t| format!("/{t}")).unwrap_or_default();
    let metrics: String = metrics.iter().map(|(name, value)| format!(" {name} {value:.4}")).collect();
    printable(&format!("step {step}{total}{metrics}"))
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
        Event::ToppedUp { price_cap, added, .. } => {
            format!("topped up: cap {price_cap} oGPU, {added} oGPU more reserved")
        }
        Event::KeysPosted { to, .. } => format!("keys handed to {to}"),
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
    let wallet = args.wallet()?;
    TaskHandle::new(wallet.client().clone(), *id).cancel(&wallet)?;
    if args.format == Format::Json {
        println!("{}", serde_json::json!({ "task": id, "cancelled": true }));
    } else {
        println!("task {id} cancelled; its escrow and trust lock are back");
    }
    Ok(())
}

fn top_up(args: &ClientArgs, id: &TaskId, max_price: Amount) -> Result<()> {
    let wallet = args.wallet()?;
    let task = TaskHandle::new(wallet.client().clone(), *id);
    task.top_up(&wallet, max_price)?;
    let view = task.detail()?.view.task;
    // As the wallet counts it: what executors and verifiers may be paid.
    let escrow = view.escrow.checked_add(view.verification_budget).context("the escrow overflows")?;
    let (cap, lock) = (view.price_cap, view.client_lock);
    if args.format == Format::Json {
        println!("{}", serde_json::json!({ "task": id, "price_cap": cap, "escrow": escrow, "trust_lock": lock }));
    } else {
        println!("task {id}: price cap {cap} oGPU; {escrow} oGPU in escrow, {lock} oGPU trust lock");
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
    let task = TaskHandle::new(args.client()?, *id);
    if follow {
        for entry in task.follow_logs()? {
            print_entry(&entry?, args.format)?;
        }
        return Ok(());
    }
    for entry in task.logs()? {
        print_entry(&entry, args.format)?;
    }
    Ok(())
}

fn keys(args: &ClientArgs, id: &TaskId, follow: bool) -> Result<()> {
    let wallet = args.wallet()?;
    let task = TaskHandle::new(wallet.client().clone(), *id);
    let json = args.format == Format::Json;
    if follow {
        let outcome = task.follow_delivering(&wallet, None, |_, event| {
            if let Event::KeysPosted { to, .. } = event {
                match json {
                    true => println!("{}", serde_json::json!({ "task": id, "keys_posted_to": to })),
                    false => println!("keys handed to {to}"),
                }
            }
        })?;
        return settled(id, &outcome, !json);
    }
    let posted = task.deliver_keys(&wallet)?;
    match json {
        true => println!("{}", serde_json::json!({ "task": id, "keys_posted_to": posted })),
        false if posted.is_empty() => println!("no worker of task {id} lacks its keys"),
        false => posted.iter().for_each(|to| println!("keys handed to {to}")),
    }
    Ok(())
}

fn result(args: &ClientArgs, id: &TaskId, out: &Path) -> Result<()> {
    let task = TaskHandle::new(args.client()?, *id);
    // Only a private task's result needs the client's key.
    let private = task.detail()?.view.task.spec.private.is_some();
    let wallet = if private { Some(args.wallet()?) } else { None };
    let written = task.result(out, wallet.as_ref())?;
    if args.format == Format::Json {
        println!("{}", serde_json::json!({ "task": id, "files": written }));
    } else {
        for path in &written {
            println!("{}", path.display());
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
