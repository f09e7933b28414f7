//! The thread beside each run: it enforces the wall-clock limit and the cancel flag, and
//! streams the module's standard error to the agent while the module runs.
//!
//! Stopping uses wasmtime's epochs: the watchdog records why the run must stop and bumps
//! the engine's epoch; compiled code checks the epoch at every function entry and loop
//! back edge and calls the store's deadline callback, which turns the recorded reason into
//! the error that ends the run. The engine is shared by every run, so a bump meant for
//! one run only makes the others' callbacks look, find no reason, and carry on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Module, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::digest::within_output_quota;
use crate::{Job, Progress, TaskError};

/// How often the watchdog looks: the slack on timeouts and cancellation.
const TICK: Duration = Duration::from_millis(20);
/// How often it adds up the output directory (a walk of up to the quota's entries).
const OUTPUT_CHECK: Duration = Duration::from_millis(250);
/// Longer log lines are cut, so one line cannot flood the progress feed.
const MAX_LINE: usize = 4096;

/// Why a run was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Stop {
    #[error("the time limit was reached")]
    Timeout,
    #[error("the run was cancelled")]
    Cancelled,
    #[error("the output quota was exceeded")]
    OutputLimit,
}

/// The reason to stop, shared between the watchdog and the store's deadline callback;
/// the first reason recorded wins.
#[derive(Clone, Default)]
pub(super) struct StopFlag(Arc<AtomicU8>);

const RUNNING: u8 = 0;
const TIMEOUT: u8 = 1;
const CANCELLED: u8 = 2;
const OUTPUT_LIMIT: u8 = 3;

impl StopFlag {
    fn set(&self, stop: Stop) {
        let code = match stop {
            Stop::Timeout => TIMEOUT,
            Stop::Cancelled => CANCELLED,
            Stop::OutputLimit => OUTPUT_LIMIT,
        };
        // Losing the race means another reason was recorded first, which then stands.
        let _ = self.0.compare_exchange(RUNNING, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn get(&self) -> Option<Stop> {
        match self.0.load(Ordering::SeqCst) {
            TIMEOUT => Some(Stop::Timeout),
            CANCELLED => Some(Stop::Cancelled),
            OUTPUT_LIMIT => Some(Stop::OutputLimit),
            _ => None,
        }
    }

    /// The store's epoch deadline callback: carry on unless a reason to stop was recorded.
    pub(super) fn callback<T>(
        &self,
    ) -> impl FnMut(StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> + Send + Sync + 'static {
        let flag = self.clone();
        move |_| match flag.get() {
            None => Ok(UpdateDeadline::Continue(1)),
            Some(stop) => Err(wasmtime::Error::new(stop)),
        }
    }
}

/// Compiles the module within the job's time limit and cancel flag: Cranelift cannot be
/// interrupted, so it compiles on a thread of its own that is left to finish (and its
/// result dropped) when the job gives up on it.
pub(super) fn compile(engine: &Engine, job: &Job<'_>, started: Instant) -> Result<Module, TaskError> {
    let deadline = started.checked_add(Duration::from_secs(job.limits.timeout_s.into()));
    let (done, compiled) = mpsc::channel();
    let (engine, program) = (engine.clone(), job.program.to_vec());
    thread::Builder::new()
        .name("ogpu-wasm-compile".into())
        .spawn(move || {
            let _ = done.send(Module::new(&engine, &program));
        })
        .map_err(|error| TaskError::Io(format!("starting the compiler thread: {error}")))?;
    loop {
        match compiled.recv_timeout(TICK) {
            Ok(module) => return module.map_err(|error| TaskError::InvalidProgram(super::describe(&error))),
            Err(RecvTimeoutError::Disconnected) => return Err(TaskError::Trap("the compiler stopped".into())),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if job.cancel.load(Ordering::Relaxed) {
            return Err(TaskError::Cancelled);
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(TaskError::Timeout { seconds: job.limits.timeout_s });
        }
    }
}

/// Runs `run` on this thread with a watchdog beside it, counting the time limit from
/// `started`.
pub(super) fn supervise(
    engine: &Engine,
    job: &Job<'_>,
    started: Instant,
    stop: &StopFlag,
    stderr: &MemoryOutputPipe,
    run: impl FnOnce() -> Result<(), TaskError>,
) -> Result<(), TaskError> {
    thread::scope(|scope| {
        let (finished, done) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("ogpu-wasm-watchdog".into())
            .spawn_scoped(scope, move || watch(engine, job, started, stop, stderr, done))
            .map_err(|error| TaskError::Io(format!("starting the watchdog thread: {error}")))?;
        let result = run();
        // Wakes the watchdog at once; the scope then waits for its last log lines.
        drop(finished);
        result
    })
}

fn watch(
    engine: &Engine,
    job: &Job<'_>,
    started: Instant,
    stop: &StopFlag,
    stderr: &MemoryOutputPipe,
    done: Receiver<()>,
) {
    let deadline = started.checked_add(Duration::from_secs(job.limits.timeout_s.into()));
    let mut log = LogLines::default();
    let mut output_checked = Instant::now();
    loop {
        let finished = !matches!(done.recv_timeout(TICK), Err(RecvTimeoutError::Timeout));
        log.forward(&stderr.contents(), job.progress, finished);
        if finished {
            return;
        }
        if stop.get().is_some() {
            continue;
        }
        let why = if job.cancel.load(Ordering::Relaxed) {
            Some(Stop::Cancelled)
        } else if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            Some(Stop::Timeout)
        } else if output_checked.elapsed() >= OUTPUT_CHECK {
            output_checked = Instant::now();
            within_output_quota(job.output).is_err().then_some(Stop::OutputLimit)
        } else {
            None
        };
        if let Some(why) = why {
            stop.set(why);
            engine.increment_epoch();
        }
    }
}

/// Turns the growing standard error buffer into log lines, each sent once.
#[derive(Default)]
struct LogLines {
    sent: usize,
}

impl LogLines {
    /// Sends the complete lines not sent yet and, once the run is over, the unterminated
    /// rest.
    fn forward(&mut self, buffer: &[u8], progress: &(dyn Fn(Progress) + Sync), last: bool) {
        let fresh = buffer.get(self.sent..).unwrap_or_default();
        let end = if last { fresh.len() } else { fresh.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
        for line in fresh[..end].split_inclusive(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            progress(Progress::Log(String::from_utf8_lossy(&line[..line.len().min(MAX_LINE)]).into_owned()));
        }
        self.sent += end;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn log_lines_are_sent_once_whole_and_the_rest_at_the_end() {
        let seen = Mutex::new(Vec::new());
        let progress = |p: Progress| seen.lock().unwrap().push(p);
        let mut log = LogLines::default();
        log.forward(b"first\r\nsec", &progress, false);
        log.forward(b"first\r\nsecond\n\nthi", &progress, false);
        log.forward(b"first\r\nsecond\n\nthird", &progress, true);
        let lines = ["first", "second", "", "third"].map(|s| Progress::Log(s.into()));
        assert_eq!(*seen.lock().unwrap(), lines);
    }

    #[test]
    fn long_lines_are_cut() {
        let seen = Mutex::new(Vec::new());
        let progress = |p: Progress| seen.lock().unwrap().push(p);
        LogLines::default().forward(&[b'x'; MAX_LINE + 10], &progress, true);
        assert_eq!(*seen.lock().unwrap(), [Progress::Log("x".repeat(MAX_LINE))]);
    }
}
