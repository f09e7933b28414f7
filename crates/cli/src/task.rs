//! `ogpu task`: what a client does with a task spec. `run-local` runs it on this
//! machine's runtimes, without the network, so a client can check a spec (and see its
//! output hash) before paying for it.
//!
//! A spec names its program and inputs by blake3 hash. Locally they are found by content:
//! every file under the blob directory (by default the spec's own) is hashed, and each
//! hash the spec names must match one of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ogpu_core::spec::TaskSpec;
use ogpu_core::{BlobHash, Hash};
use ogpu_runtime::{Job, Progress, Runtimes};

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Run the task in FILE on this machine and print its output hash.
    RunLocal {
        file: PathBuf,
        /// Where the program and input files are found by their hashes (default: the
        /// spec's directory, searched two levels deep).
        #[arg(long)]
        blobs: Option<PathBuf>,
        /// Copy the output files here (default: a temporary directory, removed).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn run(command: TaskCommand) -> Result<()> {
    match command {
        TaskCommand::RunLocal { file, blobs, out, format } => run_local(&file, blobs, out, format),
    }
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
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(std::fs::File::open(entry.path())?)?;
            found.entry(BlobHash(Hash(*hasher.finalize().as_bytes()))).or_insert(entry.path());
        }
    }
    Ok(())
}

/// The files a spec needs, found by hash: the program, then each named input.
fn locate(spec: &TaskSpec, dir: &Path) -> Result<(PathBuf, BTreeMap<String, PathBuf>)> {
    let mut found = BTreeMap::new();
    index_files(dir, 2, &mut found)?;
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

fn run_local(file: &Path, blobs: Option<PathBuf>, out: Option<PathBuf>, format: Format) -> Result<()> {
    let spec = crate::spec::load(file)?;
    let dir = blobs.unwrap_or_else(|| file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf));
    let (program, inputs) = locate(&spec, &dir)?;
    let work = tempfile::tempdir()?;
    let (input_dir, output_dir) = (work.path().join("input"), work.path().join("output"));
    std::fs::create_dir_all(&input_dir)?;
    std::fs::create_dir_all(&output_dir)?;
    for (name, path) in &inputs {
        std::fs::copy(path, input_dir.join(name)).with_context(|| format!("staging input {name:?}"))?;
    }
    let program = std::fs::read(&program)?;
    let runtimes = Runtimes::with_defaults()?;
    let cancel = AtomicBool::new(false);
    let progress = |progress: Progress| match progress {
        Progress::Log(line) => eprintln!("| {line}"),
        Progress::Step { done, total, loss } => {
            eprintln!("step {done}/{total}{}", loss.map(|l| format!(" loss {l:.4}")).unwrap_or_default())
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
        Err(error) => bail!("{}: the task failed: {error}", spec.name),
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
                println!("trace root  {trace}");
            }
            for file in &outcome.files {
                println!("  {} ({} bytes) {}", file.path, file.size, file.hash);
            }
        }
    }
    Ok(())
}
