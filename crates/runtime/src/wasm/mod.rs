//! The `wasm` runtime: a WASI (preview 1) command module run in wasmtime so that replicas
//! get bit-identical outputs and no module can reach past its limits or its directories.
//!
//! What a module sees:
//! - `/input` (fd 3), read-only: the job's input directory, each input a file under its
//!   name; `/output` (fd 4), read-write: the empty output directory.
//! - argv: `program` followed by the task's `args`. No environment variables, no stdin, no
//!   network, no threads.
//! - Standard output is part of the result: when the module prints anything it is
//!   delivered as `/output/stdout.txt` (at most 16 MiB), so a module must not create that
//!   file itself and also print. Standard error (at most 1 MiB) is streamed to the agent as
//!   [`Progress::Log`](crate::Progress::Log) lines and is not part of the result.
//! - Clocks frozen at zero, `random_get` a stream fixed by the program and its arguments
//!   (reproducible, not secret), and `poll_oneoff` refused (`ENOTSUP`): nothing in the
//!   sandbox depends on when or where it runs, and no host call can sleep past the timeout.
//!
//! Limits: fuel counts instructions (`limits.fuel`); linear memories and tables share
//! `limits.memory_mb`, and growing past it stops the run; `limits.timeout_s` bounds the
//! wall-clock time from before compilation on, checked by a watchdog thread that also
//! watches the cancel flag and the output quota (see `watchdog`). Floating point is deterministic through NaN canonicalization and
//! deterministic relaxed SIMD.
//!
//! Not made deterministic here: file metadata from the host (timestamps, inode numbers)
//! and the order `fd_readdir` lists a directory in. A module that wants to be replicated
//! must keep them out of its output (sort listings, ignore times). How deep a module may
//! recurse before its stack overflows depends on the wasmtime version and the CPU
//! architecture.

mod budget;
mod sandbox;
mod watchdog;

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

use ogpu_core::spec::{Limits, WorkloadKind};
use wasmtime::{Config, Engine, Linker, Module, Store, Trap};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::digest::digest_dir;
use crate::{Job, Outcome, Runtime, TaskError, check_job};
use budget::{MemoryBudget, MemoryLimitHit};
use watchdog::{Stop, StopFlag};

/// Where a module's standard output is delivered, in the output directory.
pub const STDOUT_FILE: &str = "stdout.txt";
const STDOUT_CAPACITY: usize = 16 << 20;
const STDERR_CAPACITY: usize = 1 << 20;
/// WASI `errno::notsup`.
const ERRNO_NOTSUP: i32 = 58;

/// Runs WASI command modules (binary `.wasm` or WAT text). One runtime serves any number
/// of jobs, concurrently from several threads.
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<Guest>,
}

/// The per-run state a store holds.
struct Guest {
    wasi: WasiP1Ctx,
    memory: MemoryBudget,
}

impl WasmRuntime {
    pub fn new() -> Result<WasmRuntime, TaskError> {
        let unsupported = |e: wasmtime::Error| TaskError::Unsupported(format!("WebAssembly engine: {}", describe(&e)));
        let mut config = Config::new();
        config
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .consume_fuel(true)
            .epoch_interruption(true);
        let engine = Engine::new(&config).map_err(unsupported)?;
        let mut linker = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |guest: &mut Guest| &mut guest.wasi).map_err(unsupported)?;
        // `poll_oneoff` would sleep on the host thread, out of reach of the timeout.
        linker.allow_shadowing(true);
        linker
            .func_wrap("wasi_snapshot_preview1", "poll_oneoff", |_: i32, _: i32, _: i32, _: i32| ERRNO_NOTSUP)
            .map_err(unsupported)?;
        Ok(WasmRuntime { engine, linker })
    }

    /// Instantiates and runs the module to its end; `Ok` when `_start` returns or the
    /// module exits with status 0.
    fn execute(&self, store: &mut Store<Guest>, module: &Module, limits: &Limits) -> Result<(), TaskError> {
        let finish = |error: wasmtime::Error, otherwise: fn(String) -> TaskError| match classify(&error, limits) {
            Some(TaskError::ExitCode(0)) => Ok(()),
            Some(failure) => Err(failure),
            None => Err(otherwise(describe(&error))),
        };
        // Failing to instantiate without a trap means imports that do not resolve.
        let instance = match self.linker.instantiate(&mut *store, module) {
            Ok(instance) => instance,
            Err(error) => return finish(error, TaskError::InvalidProgram),
        };
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start").map_err(|_| {
            TaskError::InvalidProgram(
                "the module exports no `_start` function taking and returning nothing; build it as a WASI command"
                    .into(),
            )
        })?;
        start.call(&mut *store, ()).or_else(|error| finish(error, TaskError::Trap))
    }
}

impl Runtime for WasmRuntime {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Wasm
    }

    fn run(&self, job: &Job<'_>) -> Result<Outcome, TaskError> {
        check_job(WorkloadKind::Wasm, job)?;
        let started = Instant::now();
        let module = watchdog::compile(&self.engine, job, started)?;

        let stdout = MemoryOutputPipe::new(STDOUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = sandbox::wasi_context(job, stdout.clone(), stderr.clone())?;
        let mut store = Store::new(&self.engine, Guest { wasi, memory: MemoryBudget::new(job.limits.memory_mb) });
        store.limiter(|guest| &mut guest.memory);
        store
            .set_fuel(job.limits.fuel)
            .map_err(|error| TaskError::Unsupported(format!("fuel metering: {}", describe(&error))))?;
        let stop = StopFlag::default();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(stop.callback());

        let run = || self.execute(&mut store, &module, &job.limits);
        watchdog::supervise(&self.engine, job, started, &stop, &stderr, run)?;
        let compute_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

        deliver_stdout(job, &stdout)?;
        let digest = digest_dir(job.output)?;
        Ok(Outcome { output: digest.hash, trace: None, files: digest.files, manifest: digest.manifest, compute_ms })
    }
}

fn deliver_stdout(job: &Job<'_>, stdout: &MemoryOutputPipe) -> Result<(), TaskError> {
    let bytes = stdout.contents();
    if bytes.is_empty() {
        return Ok(());
    }
    let path = job.output.join(STDOUT_FILE);
    // `create_new` also refuses a symbolic link the module may have planted there, which
    // would otherwise let it aim this host-side write anywhere.
    let mut file =
        OpenOptions::new().write(true).create_new(true).open(&path).map_err(|error| {
            TaskError::BadOutput(format!("cannot deliver standard output as {STDOUT_FILE}: {error}"))
        })?;
    file.write_all(&bytes).map_err(TaskError::io("writing", &path))
}

/// The failure a wasmtime error stands for, when it is one we can name.
fn classify(error: &wasmtime::Error, limits: &Limits) -> Option<TaskError> {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Some(TaskError::ExitCode(exit.0));
    }
    if let Some(stop) = error.downcast_ref::<Stop>() {
        return Some(match stop {
            Stop::Timeout => TaskError::Timeout { seconds: limits.timeout_s },
            Stop::Cancelled => TaskError::Cancelled,
            Stop::OutputLimit => {
                TaskError::OutputLimit { files: crate::MAX_OUTPUT_FILES, bytes: crate::MAX_OUTPUT_BYTES }
            }
        });
    }
    if error.is::<MemoryLimitHit>() {
        return Some(TaskError::MemoryLimit { limit_mb: limits.memory_mb });
    }
    match error.downcast_ref::<Trap>()? {
        Trap::OutOfFuel => Some(TaskError::OutOfFuel { fuel: limits.fuel }),
        _ => Some(TaskError::Trap(describe(error))),
    }
}

/// The whole chain of an error, outermost first.
fn describe(error: &wasmtime::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}
