//! The `container` runtime: a client's own OCI image archive, unpacked through the image
//! cache (`ogpu_container::Cache`) and run in the bubblewrap sandbox with the task's
//! inputs read-only at `/input` and its outputs written to `/output`. The command is the
//! image's entrypoint followed by the task's `args`, or by the image's `Cmd` when the task
//! gives none, as `docker run IMAGE ARGS...` would run it; its environment is the image's
//! with the task's `env` over it. What it prints is passed on as log lines, and the steps
//! it appends to its progress file (see [`progress`]) as steps.

pub mod learning;
mod progress;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use ogpu_container::cache::Lease;
use ogpu_container::nvidia::{self, Driver};
use ogpu_container::sandbox::SandboxError;
use ogpu_container::sandbox::{self, Command, Ended, Mounts};
use ogpu_container::{Cache, Image, ImageError};
use ogpu_core::spec::WorkloadKind;

use crate::digest::{MAX_OUTPUT_BYTES, digest_dir};
use crate::{Job, Outcome, Progress, Runtime, TaskError, check_job};

/// Processes and threads a container may run at once.
const PROCESSES: u64 = 1024;
/// How much the image cache keeps, unpacked.
const CACHE_BYTES: u64 = 64 << 30;

/// The variable naming the progress file, and where the file is in the sandbox.
const PROGRESS_VARIABLE: &str = "OGPU_PROGRESS";
const RUNTIME_MOUNT: &str = "/ogpu";
/// How often the progress file is looked at.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Runs image archives in the sandbox, keeping their layers in a cache directory.
pub struct ContainerRuntime {
    cache: Cache,
    /// Where each run's own files go: its image archive while it is read, the directory
    /// it shares with the program at `/ogpu`.
    scratch: PathBuf,
}

/// Names scratch apart within this process.
static SCRATCH: AtomicU64 = AtomicU64::new(0);

/// A file or directory of one run's, removed when the run is done with it.
struct Scratch(PathBuf);

impl Scratch {
    /// A new name of its own under `dir` (runs of the same image may overlap).
    fn name(dir: &Path, suffix: &str) -> Scratch {
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        Scratch(dir.join(format!("{}-{n}{suffix}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0).or_else(|_| std::fs::remove_file(&self.0));
    }
}

impl ContainerRuntime {
    /// A runtime whose image cache is `dir` (created if need be).
    pub fn new(dir: &Path) -> Result<ContainerRuntime, TaskError> {
        let scratch = dir.join("scratch");
        std::fs::create_dir_all(&scratch).map_err(TaskError::io("creating", &scratch))?;
        let cache = Cache::open(&dir.join("cache"), Default::default(), CACHE_BYTES).map_err(image_error)?;
        Ok(ContainerRuntime { cache, scratch })
    }

    /// The root filesystem of the image archive `program`, held for the run, and its run
    /// settings.
    fn image(&self, program: &[u8]) -> Result<(Lease<'_>, Image), TaskError> {
        // Made new: never a file or link someone left there.
        let archive = Scratch::name(&self.scratch, ".tar");
        let mut file = File::create_new(&archive.0).map_err(TaskError::io("creating", &archive.0))?;
        file.write_all(program).map_err(TaskError::io("writing", &archive.0))?;
        drop(file);
        let image = Image::read(&archive.0).map_err(image_error)?;
        let rootfs = self.cache.rootfs(&image).map_err(image_error)?;
        if let Err(error) = self.cache.evict() {
            tracing::warn!(%error, "cannot evict from the image cache");
        }
        Ok((rootfs, image))
    }
}

/// An image that cannot be used is the program's fault, unless this machine failed.
fn image_error(error: ImageError) -> TaskError {
    match error {
        ImageError::Io { .. } => TaskError::Io(error.to_string()),
        error => TaskError::InvalidProgram(error.to_string()),
    }
}

/// Whose fault a sandbox that could not start is: the command's (a NUL in it, a bad
/// name in its environment), this machine's reading or writing, or this machine's setup.
fn sandbox_error(error: SandboxError) -> TaskError {
    match error {
        SandboxError::Nul(_) | SandboxError::Env(_) => TaskError::BadInput(error.to_string()),
        SandboxError::Io { .. } => TaskError::Io(error.to_string()),
        SandboxError::NoBubblewrap(_) | SandboxError::Seccomp(_) | SandboxError::Unreachable { .. } => {
            TaskError::Unsupported(error.to_string())
        }
    }
}

/// The command `docker run IMAGE ARGS...` runs: the entrypoint, then the arguments given
/// or else the image's `Cmd`.
fn argv(image: &Image, args: &[String]) -> Result<Vec<String>, TaskError> {
    let config = &image.config;
    let rest = if args.is_empty() { &config.cmd } else { args };
    let argv: Vec<String> = config.entrypoint.iter().chain(rest).cloned().collect();
    if argv.is_empty() {
        return Err(TaskError::BadInput("the image names no command and the task gives none in its args".into()));
    }
    Ok(argv)
}

/// The image's `NAME=value` pairs (one without `=` is a name with an empty value), the
/// task's over them, and the runtime's `OGPU_` names over both.
fn environment(image: &Image, task: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let pair = |entry: &String| match entry.split_once('=') {
        Some((name, value)) => (name.to_string(), value.to_string()),
        None => (entry.clone(), String::new()),
    };
    let mut env: BTreeMap<String, String> =
        image.config.env.iter().map(pair).filter(|(name, _)| !name.is_empty()).collect();
    env.extend(task.iter().map(|(name, value)| (name.clone(), value.clone())));
    env.insert(PROGRESS_VARIABLE.into(), format!("{RUNTIME_MOUNT}/{}", progress::FILE));
    env
}

/// Whether bubblewrap, which every container runs under, is installed.
fn bubblewrap() -> Result<(), TaskError> {
    match Path::new(sandbox::BWRAP).is_file() {
        true => Ok(()),
        false => Err(TaskError::Unsupported(format!(
            "container tasks run under bubblewrap, and {} is missing (Debian: apt-get install bubblewrap)",
            sandbox::BWRAP
        ))),
    }
}

/// The machine's NVIDIA driver for a command that asks for `gpus`; `None` when it asks
/// for none.
fn gpu_driver(gpus: u32) -> Result<Option<Driver>, TaskError> {
    if gpus == 0 {
        return Ok(None);
    }
    let driver = Driver::find(Path::new("/")).ok_or_else(|| {
        TaskError::Unsupported(format!(
            "the task asks for {gpus} GPU(s), and this machine has no NVIDIA device node (/dev/nvidia0) or no libcuda"
        ))
    })?;
    Ok(Some(driver))
}

/// The search path of a command whose image sets none, as docker gives it.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Adds the driver's libraries and programs to the command's search paths in `env`.
fn with_driver(env: &mut BTreeMap<String, String>) {
    // After the image's own: an image that ships a CUDA forward-compatibility libcuda
    // names it first on purpose. (A PATH of the driver's alone would hide the image's
    // programs, which the default search path finds.)
    let path = env.entry("PATH".into()).or_insert_with(|| DEFAULT_PATH.into());
    *path = format!("{path}:{}", nvidia::BINARY_DIR);
    let libraries = env.entry("LD_LIBRARY_PATH".into()).or_default();
    *libraries = match libraries.is_empty() {
        true => nvidia::LIBRARY_DIR.to_string(),
        false => format!("{libraries}:{}", nvidia::LIBRARY_DIR),
    };
    env.insert("NVIDIA_VISIBLE_DEVICES".into(), "all".into());
}

/// Runs `run` while a thread passes on the steps the program appends to its progress
/// file in `dir`, reading the file a last time once `run` returns.
fn following_progress<T>(dir: &Path, report: &(dyn Fn(Progress) + Sync), run: impl FnOnce() -> T) -> T {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut tail = progress::Tail::new(dir);
            // Until `run` returns and drops `stop`, which ends the wait at once.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PROGRESS_EVERY) {
                tail.poll(report);
            }
            tail.poll(report);
        });
        let result = run();
        drop(stop);
        result
    })
}

impl Runtime for ContainerRuntime {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Container
    }

    fn accepts(&self, _args: &[String], gpus: u32) -> Result<(), TaskError> {
        bubblewrap()?;
        gpu_driver(gpus).map(drop)
    }

    fn run(&self, job: &Job<'_>) -> Result<Outcome, TaskError> {
        check_job(WorkloadKind::Container, job)?;
        let settings = &job.container;
        bubblewrap()?;
        // Found before the image is unpacked: a machine without it refuses at once.
        let driver = gpu_driver(settings.gpus)?;
        let started = Instant::now();
        let (rootfs, image) = self.image(job.program)?;
        let shared = Scratch::name(&self.scratch, "");
        std::fs::create_dir(&shared.0).map_err(TaskError::io("creating", &shared.0))?;
        let mut env = environment(&image, settings.env);
        if driver.is_some() {
            with_driver(&mut env);
        }
        if let Some(checkpointing) = &settings.checkpoints {
            learning::prepare(checkpointing, job.output, &shared.0, RUNTIME_MOUNT, &mut env)?;
        }
        let command = Command {
            argv: argv(&image, job.args)?,
            env,
            working_dir: image.config.working_dir.clone().unwrap_or_default(),
        };
        let memory_bytes = u64::from(job.limits.memory_mb) << 20;
        let limits = sandbox::Limits {
            memory_bytes,
            processes: PROCESSES,
            file_bytes: MAX_OUTPUT_BYTES,
            output_bytes: MAX_OUTPUT_BYTES,
            wall: Duration::from_secs(u64::from(job.limits.timeout_s)),
        };
        let mounts = Mounts {
            rootfs: &rootfs,
            input: job.inputs,
            output: job.output,
            runtime: &shared.0,
            driver: driver.as_ref(),
        };
        let ended = following_progress(&shared.0, job.progress, || {
            sandbox::run(&mounts, &command, &limits, job.cancel, |_, line| {
                (job.progress)(Progress::Log(line.to_string()))
            })
        })
        .map_err(sandbox_error)?;
        match ended {
            Ended::Exited(0) => {}
            Ended::Exited(code) => return Err(TaskError::ExitCode(code)),
            Ended::Signalled(signal) => {
                return Err(TaskError::Trap(format!("the sandbox was killed by signal {signal}")));
            }
            Ended::TimedOut => return Err(TaskError::Timeout { seconds: job.limits.timeout_s }),
            Ended::Cancelled => return Err(TaskError::Cancelled),
            Ended::OutputFull => {
                return Err(TaskError::OutputLimit { files: crate::MAX_OUTPUT_FILES, bytes: MAX_OUTPUT_BYTES });
            }
        }
        let compute_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let digest = digest_dir(job.output)?;
        let trace = match &settings.checkpoints {
            Some(checkpointing) => learning::finish(checkpointing, &digest.files)?,
            None => None,
        };
        Ok(Outcome { output: digest.hash, trace, files: digest.files, manifest: digest.manifest, compute_ms })
    }
}
