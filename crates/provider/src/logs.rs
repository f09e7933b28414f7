//! A run's progress and log lines, signed by the provider's key and posted to the API in
//! small batches, so a client watching the task sees them live and can check who wrote
//! them. Posting is best effort: a log the API cannot take never fails the task.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ogpu_client::wallet::Wallet;
use ogpu_core::tasklog::{LogBody, LogEntry, SignedLogEntry, limits};
use ogpu_core::{Hash, TaskId};

/// Entries wait at most this long, or until this many, before they are posted.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
const FLUSH_AT: usize = 64;
/// Entries kept back at most while the API does not yet count this provider a party.
const HELD_BACK: usize = 256;
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// At most one routine progress step (a loss alone) this often; the last step and steps
/// with evaluations are always kept. A training run takes thousands of steps a second on
/// small models, more than anyone watching can read and more than the API keeps of a task.
const STEP_EVERY: Duration = Duration::from_millis(250);

pub(crate) struct TaskLog {
    task: TaskId,
    wallet: Arc<Wallet>,
    state: Mutex<Pending>,
}

struct Pending {
    next_seq: u64,
    entries: Vec<SignedLogEntry>,
    since: Instant,
    /// When the last step was kept.
    last_step: Option<Instant>,
    /// Not before this may entries the API refused be posted again.
    retry_at: Option<Instant>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `text` cut to at most `max` bytes on a character boundary.
fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl TaskLog {
    pub fn new(task: TaskId, wallet: Arc<Wallet>) -> TaskLog {
        TaskLog {
            task,
            wallet,
            state: Mutex::new(Pending {
                next_seq: 0,
                entries: Vec::new(),
                since: Instant::now(),
                last_step: None,
                retry_at: None,
            }),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, body: LogBody, flush_now: bool) {
        let mut pending = self.pending();
        let entry = LogEntry::sign(self.wallet.key(), self.task, pending.next_seq, now_ms(), body);
        pending.next_seq += 1;
        pending.entries.push(entry);
        let due = flush_now || pending.entries.len() >= FLUSH_AT || pending.since.elapsed() >= FLUSH_EVERY;
        if due && pending.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.post(&mut pending);
        }
    }

    fn post(&self, pending: &mut Pending) {
        let entries = std::mem::take(&mut pending.entries);
        pending.since = Instant::now();
        if entries.is_empty() {
            return;
        }
        match self.wallet.client().post_logs(&self.task, &entries) {
            // A racer for a pool job is a party only once its commit is final: keep the
            // lines (the newest few) for the next post.
            Err(error) if error.api_error() == Some("not_a_party") => {
                let mut kept = entries;
                kept.append(&mut pending.entries);
                let excess = kept.len().saturating_sub(HELD_BACK);
                pending.entries = kept.split_off(excess);
                pending.retry_at = Some(Instant::now() + RETRY_EVERY);
            }
            Err(error) => tracing::debug!(%error, task = %self.task, "the API did not take the log"),
            Ok(_) => pending.retry_at = None,
        }
    }

    pub fn line(&self, stream: &str, line: &str) {
        self.push(LogBody::Log { stream: stream.into(), line: clip(line, limits::LINE_BYTES) }, false);
    }

    pub fn step(&self, step: u64, total: u64, metrics: &[(&str, f64)]) {
        let routine = step < total && metrics.iter().all(|(name, _)| *name == "loss");
        {
            let mut pending = self.pending();
            if routine && pending.last_step.is_some_and(|last| last.elapsed() < STEP_EVERY) {
                return;
            }
            pending.last_step = Some(Instant::now());
        }
        let metrics = metrics.iter().filter(|(_, v)| v.is_finite()).map(|(n, v)| (n.to_string(), *v)).collect();
        self.push(LogBody::Step { step, total: Some(total), metrics }, false);
    }

    pub fn started(&self) {
        self.push(LogBody::Started, true);
    }

    pub fn finished(&self, output: Hash) {
        self.push(LogBody::Finished { output }, true);
    }

    pub fn failed(&self, reason: &str) {
        self.push(LogBody::Failed { reason: clip(reason, limits::LINE_BYTES) }, true);
    }

    pub fn flush(&self) {
        let mut pending = self.pending();
        self.post(&mut pending);
    }
}
