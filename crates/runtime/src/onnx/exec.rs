//! Runs a job's batches on the model, using every core. tract computes one batch on one
//! thread, so batches run side by side, one worker per core; when there are fewer batches
//! than cores, each matrix product is also split across a shared thread pool. A batch
//! whose shapes recur in the job runs on a plan made for them (see `model`). None of this
//! depends on the machine: each batch is computed alone and kept in its slot, tract splits
//! products by output tiles, each summed whole by one thread, and which plan a batch gets
//! depends only on the batches, so the result is the same whatever the thread count or
//! the order batches finish in.
//!
//! Between batches each worker looks at the cancel flag and the time limit: a running
//! batch is not interrupted, so one batch is the slack on both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tract_linalg::multithread::Executor;
use tract_onnx::prelude::{TValue, TVec};

use super::model::{Model, Shapes, shapes};
use crate::{Job, Progress, TaskError};

type Outputs = TVec<TValue>;

/// Runs every batch, returning each batch's outputs in batch order.
///
/// When batches fail, the error of the first failing one (by position) is returned, as
/// every provider would see it; cancellation and the time limit win over both.
pub fn run(
    model: &Model,
    batches: Vec<TVec<TValue>>,
    job: &Job<'_>,
    started: Instant,
) -> Result<Vec<Outputs>, TaskError> {
    let total = batches.len();
    let deadline = started.checked_add(Duration::from_secs(job.limits.timeout_s.into()));
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(total).max(1);
    let executor = match workers < cores {
        true => products_pool(cores)?,
        false => Executor::SingleThread,
    };
    let mut seen: HashMap<Shapes, usize> = HashMap::new();
    for batch in &batches {
        *seen.entry(shapes(batch)).or_default() += 1;
    }
    let specialize: Vec<bool> = batches.iter().map(|batch| seen.get(&shapes(batch)).is_some_and(|&n| n > 1)).collect();
    let pending: Vec<Mutex<Option<TVec<TValue>>>> = batches.into_iter().map(|b| Mutex::new(Some(b))).collect();
    let results: Vec<Mutex<Option<Result<Outputs, TaskError>>>> = (0..total).map(|_| Mutex::default()).collect();
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
            let Some(inputs) = lock(&pending[index]).take() else { continue };
            let result = model.run(inputs, &executor, specialize[index]);
            if result.is_err() {
                first_failure.fetch_min(index, Ordering::Relaxed);
            } else {
                // Counted under the lock so the steps arrive in order.
                let mut done = lock(&done);
                *done += 1;
                (job.progress)(Progress::Step { done: *done, total: total as u64, loss: None });
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

/// A pool of `threads` for tract's matrix products.
fn products_pool(threads: usize) -> Result<Executor, TaskError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|n| format!("ogpu-onnx-{n}"))
        .build()
        .map_err(|error| TaskError::Io(format!("starting the inference threads: {error}")))?;
    Ok(Executor::MultiThread(Arc::new(pool)))
}

/// Locks `mutex`; a panic elsewhere cannot leave these plain values half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
