//! Runs a job's batches with any number of workers, each taking the next batch when it is
//! free, and keeps each result in its batch's slot, so the results come back in batch order
//! whatever the order batches finish in. Finished batches are reported as steps, in order.
//!
//! Between batches each worker looks at the cancel flag and the time limit: a running
//! batch is not interrupted, so one batch is the slack on both.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Job, Progress, TaskError};

/// Runs `run_one(index, batch)` on every batch with up to `workers` threads (the calling
/// thread among them), returning each batch's result in batch order.
///
/// When batches fail, the error of the first failing one (by position) is returned, as
/// every provider would see it; cancellation and the time limit win over both.
pub fn run<B: Send, O: Send>(
    batches: Vec<B>,
    workers: usize,
    job: &Job<'_>,
    started: Instant,
    run_one: impl Fn(usize, B) -> Result<O, TaskError> + Sync,
) -> Result<Vec<O>, TaskError> {
    let total = batches.len();
    let workers = workers.clamp(1, total.max(1));
    let deadline = started.checked_add(Duration::from_secs(job.limits.timeout_s.into()));
    let pending: Vec<Mutex<Option<B>>> = batches.into_iter().map(|b| Mutex::new(Some(b))).collect();
    let results: Vec<Mutex<Option<Result<O, TaskError>>>> = (0..total).map(|_| Mutex::default()).collect();
    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);
    let stopped: Mutex<Option<TaskError>> = Mutex::default();
    let stopping = AtomicBool::new(false);
    let done = Mutex::new(0u64);

    let work = || {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            // Batches after a failed one need not run: their results cannot change the error.
            if index >= total || index > first_failure.load(Ordering::Relaxed) || stopping.load(Ordering::Relaxed) {
                return;
            }
            let why = if job.cancel.load(Ordering::Relaxed) {
                Some(TaskError::Cancelled)
            } else if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                Some(TaskError::Timeout { seconds: job.limits.timeout_s })
            } else {
                None
            };
            if let Some(why) = why {
                stopping.store(true, Ordering::Relaxed);
                lock(&stopped).get_or_insert(why);
                return;
            }
            let Some(batch) = lock(&pending[index]).take() else { continue };
            let result = run_one(index, batch);
            if result.is_err() {
                first_failure.fetch_min(index, Ordering::Relaxed);
            } else {
                // Counted under the lock so the steps arrive in order.
                let mut done = lock(&done);
                *done += 1;
                (job.progress)(Progress::Step { done: *done, total: total as u64, metrics: Vec::new() });
            }
            *lock(&results[index]) = Some(result);
        }
    };
    thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });

    if let Some(why) = lock(&stopped).take() {
        return Err(why);
    }
    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        return Err(TaskError::Timeout { seconds: job.limits.timeout_s });
    }
    results
        .into_iter()
        .map(|slot| {
            let slot = slot.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
            // An empty slot can only follow a failed batch, whose error comes first.
            slot.unwrap_or_else(|| Err(TaskError::Trap("a batch did not run".into())))
        })
        .collect()
}

/// Locks `mutex`; a panic elsewhere cannot leave these plain values half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
