//! Providers' signed progress and log lines, kept for a while and streamed to clients.
//!
//! - `POST /v1/tasks/{id}/logs`: a JSON array of at most 256 [`SignedLogEntry`]s. Each
//!   must be within its size limits, about task `id`, signed by its provider, and from a
//!   party of the live task in the finalized state: an executor, a racer that committed,
//!   or a chosen verifier (a racer keeps its earlier lines and posts them once its commit
//!   is final). One bad entry refuses the whole request, as does one that would take its
//!   provider past [`PROVIDER_BYTES`] of kept entries (429). An entry whose
//!   `(provider, seq)` is already kept is ignored, so a retried post is harmless. Answers
//!   `{stored, duplicates}`.
//! - `GET /v1/tasks/{id}/logs?from=N&limit=L`: `{entries, next}`, the kept entries from
//!   cursor `N` on, oldest first; poll with `from=next` for newer ones.
//! - `GET /v1/tasks/{id}/logs/stream?from=N`: the same as server-sent `log` events, each
//!   with its cursor as the event id: the kept entries first, then new ones as they come.
//!
//! Entries are served exactly as signed, for clients to verify. They are not consensus
//! state: a node keeps them in memory only, the latest 2,000 of each of the 1,000 tasks
//! most recently written to and at most [`TOTAL_BYTES`] in all, and forgets them when it
//! restarts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use ogpu_chain::state::{Phase, State as ChainState, Task};
use ogpu_client::types::{LogPage, PostedLogs};
use ogpu_core::tasklog::{SignedLogEntry, limits, verify_all};
use ogpu_core::{Address, PublicKey, TaskId};
use ogpu_node::service::NodeHandle;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::error::{ApiError, parse};
use crate::limits::Guard;

/// Entries one request may carry.
const MAX_ENTRIES: usize = 256;
/// Room for a full request: every entry a full line, with its ids, key and signature.
pub const BODY_BYTES: usize = MAX_ENTRIES * (limits::LINE_BYTES + 512);
/// Entries kept per task; the oldest go first.
const ENTRIES_PER_TASK: usize = 2_000;
/// Tasks kept; the one least recently written to goes first.
const TASKS: usize = 1_000;
/// Entries one read returns by default and at most.
const DEFAULT_PAGE: usize = 500;
const MAX_PAGE: usize = ENTRIES_PER_TASK;
/// Bytes of entries (as JSON) kept for one provider across tasks, and in all; past the
/// total, the tasks least recently written to go first.
pub const PROVIDER_BYTES: usize = 8 << 20;
pub const TOTAL_BYTES: usize = 256 << 20;
/// Wakeups a stream may fall behind by before it rereads the store.
const WAKEUPS: usize = 1_024;

/// The kept entries of every task, and a wakeup for streams whenever a task gets new ones.
pub struct TaskLogs {
    kept: Mutex<Kept>,
    written: broadcast::Sender<TaskId>,
}

#[derive(Default)]
struct Kept {
    tasks: HashMap<TaskId, TaskLog>,
    /// Tasks by the cursor of their latest entry: least recently written first.
    recency: BTreeMap<u64, TaskId>,
    /// The next entry's cursor. One count across tasks, so that a cursor never goes back,
    /// not even when a dropped task's log starts again.
    next: u64,
    /// Bytes kept per provider, and in all.
    by_provider: HashMap<PublicKey, usize>,
    bytes: usize,
}

/// What an entry takes, counted as the JSON it is served as.
fn size_of(entry: &SignedLogEntry) -> usize {
    serde_json::to_vec(entry).map_or(limits::LINE_BYTES, |json| json.len())
}

/// A provider would keep more than its share.
#[derive(Debug, PartialEq, Eq)]
struct OverQuota(PublicKey);

/// Never empty: a task without entries is not kept.
#[derive(Default)]
struct TaskLog {
    /// With each entry's cursor and size.
    entries: VecDeque<(u64, Arc<SignedLogEntry>, usize)>,
    /// `(provider, seq)` of each kept entry.
    names: HashSet<(PublicKey, u64)>,
}

impl TaskLog {
    fn latest(&self) -> Option<u64> {
        self.entries.back().map(|(cursor, ..)| *cursor)
    }

    /// Keeps `entry`; returns the entry it pushed out, if the log was full.
    fn push(&mut self, cursor: u64, entry: SignedLogEntry, size: usize) -> Option<(Arc<SignedLogEntry>, usize)> {
        self.entries.push_back((cursor, Arc::new(entry), size));
        if self.entries.len() > ENTRIES_PER_TASK
            && let Some((_, oldest, size)) = self.entries.pop_front()
        {
            self.names.remove(&(oldest.entry.provider, oldest.entry.seq));
            return Some((oldest, size));
        }
        None
    }
}

impl Kept {
    /// Keeps the entries not kept already; returns how many those were. Keeps nothing when
    /// that would take a provider past its share.
    fn append(&mut self, task: TaskId, entries: Vec<SignedLogEntry>) -> Result<usize, OverQuota> {
        let log = self.tasks.get(&task);
        let new: Vec<(SignedLogEntry, usize)> = entries
            .into_iter()
            .filter(|e| log.is_none_or(|log| !log.names.contains(&(e.entry.provider, e.entry.seq))))
            .map(|e| {
                let size = size_of(&e);
                (e, size)
            })
            .collect();
        let mut adding: HashMap<PublicKey, usize> = HashMap::new();
        for (entry, size) in &new {
            *adding.entry(entry.entry.provider).or_default() += size;
        }
        for (provider, bytes) in &adding {
            if self.by_provider.get(provider).copied().unwrap_or(0) + bytes > PROVIDER_BYTES {
                return Err(OverQuota(*provider));
            }
        }
        if new.is_empty() {
            return Ok(0);
        }
        if !self.tasks.contains_key(&task) {
            while self.tasks.len() >= TASKS && self.drop_oldest_task() {}
        }
        let log = self.tasks.entry(task).or_default();
        let previous = log.latest();
        let mut stored = 0;
        let mut dropped = Vec::new();
        for (entry, size) in new {
            if log.names.insert((entry.entry.provider, entry.entry.seq)) {
                *self.by_provider.entry(entry.entry.provider).or_default() += size;
                self.bytes += size;
                dropped.extend(log.push(self.next, entry, size));
                self.next += 1;
                stored += 1;
            }
        }
        if let Some(previous) = previous {
            self.recency.remove(&previous);
        }
        if let Some(latest) = log.latest() {
            self.recency.insert(latest, task);
        }
        for (entry, size) in dropped {
            self.forget(&entry, size);
        }
        while self.bytes > TOTAL_BYTES && self.recency.first_key_value().is_some_and(|(_, oldest)| *oldest != task) {
            self.drop_oldest_task();
        }
        Ok(stored)
    }

    fn forget(&mut self, entry: &SignedLogEntry, size: usize) {
        self.bytes = self.bytes.saturating_sub(size);
        if let Some(kept) = self.by_provider.get_mut(&entry.entry.provider) {
            *kept = kept.saturating_sub(size);
            if *kept == 0 {
                self.by_provider.remove(&entry.entry.provider);
            }
        }
    }

    /// Drops the log of the task least recently written to; false when none is kept.
    fn drop_oldest_task(&mut self) -> bool {
        let Some((_, oldest)) = self.recency.pop_first() else { return false };
        if let Some(log) = self.tasks.remove(&oldest) {
            for (_, entry, size) in log.entries {
                self.forget(&entry, size);
            }
        }
        true
    }

    fn read(&self, task: &TaskId, from: u64, limit: usize) -> Vec<(u64, Arc<SignedLogEntry>)> {
        let Some(log) = self.tasks.get(task) else { return Vec::new() };
        let start = log.entries.partition_point(|(cursor, ..)| *cursor < from);
        log.entries.range(start..).take(limit).map(|(cursor, entry, _)| (*cursor, entry.clone())).collect()
    }
}

impl Default for TaskLogs {
    fn default() -> TaskLogs {
        TaskLogs { kept: Mutex::default(), written: broadcast::channel(WAKEUPS).0 }
    }
}

impl TaskLogs {
    /// Nothing panics while the lock is held, and `Kept` stays whole between statements,
    /// so a poisoned lock still guards a consistent store.
    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, task: TaskId, entries: Vec<SignedLogEntry>) -> Result<usize, ApiError> {
        let stored = self.kept().append(task, entries).map_err(|OverQuota(provider)| {
            let detail = format!("provider {provider} has {PROVIDER_BYTES} bytes of log lines kept; no more are taken");
            ApiError::too_many("log_quota", detail)
        })?;
        if stored > 0 {
            // An error only means no stream is listening.
            let _ = self.written.send(task);
        }
        Ok(stored)
    }

    fn read(&self, task: &TaskId, from: u64, limit: usize) -> Vec<(u64, Arc<SignedLogEntry>)> {
        self.kept().read(task, from, limit)
    }
}

/// Whether `who` works on the live task (executes it, raced for it with a commit, or
/// verifies it), so that its lines are worth showing the client.
fn is_party(task: &Task, who: &Address) -> bool {
    let executor = task.executors.iter().any(|e| e.provider == *who);
    let racer = matches!(&task.phase, Phase::Racing { entries, .. } if entries.iter().any(|e| e.provider == *who));
    let verifier = task.verifiers.iter().any(|v| v.verifier == *who);
    !matches!(task.phase, Phase::Done(_)) && (executor || racer || verifier)
}

fn unknown_task(id: TaskId) -> ApiError {
    ApiError::not_found("unknown_task", format!("no task {id}"))
}

/// Checks every entry, cheapest checks first, naming the first bad one.
fn admit(state: &ChainState, id: TaskId, entries: &[SignedLogEntry]) -> Result<(), ApiError> {
    let task = state.tasks.get(&id).ok_or_else(|| unknown_task(id))?;
    for (index, signed) in entries.iter().enumerate() {
        let entry = &signed.entry;
        entry.validate().map_err(|e| ApiError::bad_request("invalid_entry", format!("entries[{index}]: {e}")))?;
        if entry.task != id {
            let detail = format!("entries[{index}] is about task {}, not {id}", entry.task);
            return Err(ApiError::bad_request("wrong_task", detail));
        }
        let provider = Address::of(&entry.provider);
        if !is_party(task, &provider) {
            let detail = format!("entries[{index}]: {provider} is not a party of task {id}");
            return Err(ApiError::forbidden("not_a_party", detail));
        }
    }
    verify_all(entries).map_err(|(index, e)| ApiError::bad_request("bad_signature", format!("entries[{index}]: {e}")))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/logs", params(("id" = String, Path, description = "Task id, hex")),
    request_body(content = Vec<Object>, description = "At most 256 signed log entries, `{entry: {task, provider, seq, time_ms, body}, signature}`"),
    responses((status = 200, description = "`{stored, duplicates}`"),
        (status = 400, description = "A malformed, oversize, forged or misdirected entry; nothing is stored"),
        (status = 403, description = "An entry from a provider that is not a party of the live task; nothing is stored"),
        (status = 429, description = "A provider past its share of kept entries; nothing is stored"),
        (status = 404, description = "No such task")))]
pub async fn post(
    State(node): State<NodeHandle>,
    State(logs): State<Arc<TaskLogs>>,
    Path(id): Path<String>,
    body: Result<Json<Vec<SignedLogEntry>>, JsonRejection>,
) -> Result<Json<PostedLogs>, ApiError> {
    let id = TaskId(parse("id", &id)?);
    let Json(entries) = body?;
    if entries.len() > MAX_ENTRIES {
        return Err(ApiError::bad_request("too_many_entries", format!("at most {MAX_ENTRIES} entries per request")));
    }
    let state = node.finalized.borrow().clone();
    admit(&state, id, &entries)?;
    let total = entries.len();
    let stored = logs.append(id, entries)?;
    Ok(Json(PostedLogs { stored, duplicates: total - stored }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
pub struct ReadQuery {
    /// Entries from this cursor on (default 0: all that are kept).
    from: u64,
    /// At most this many (default 500, at most 2000).
    limit: Option<usize>,
}

fn page(requested: Option<usize>) -> Result<usize, ApiError> {
    match requested.unwrap_or(DEFAULT_PAGE) {
        0 => Err(ApiError::bad_request("invalid_parameter", "limit: must be at least 1")),
        n => Ok(n.min(MAX_PAGE)),
    }
}

/// The task's id, when it is on chain.
fn known_task(node: &NodeHandle, id: &str) -> Result<TaskId, ApiError> {
    let id = TaskId(parse("id", id)?);
    if node.finalized.borrow().tasks.contains_key(&id) { Ok(id) } else { Err(unknown_task(id)) }
}

#[utoipa::path(get, path = "/v1/tasks/{id}/logs", params(("id" = String, Path, description = "Task id, hex"), ReadQuery),
    responses((status = 200, description = "`{entries, next}`: signed entries oldest first, and the cursor to read on from"),
        (status = 404, description = "No such task")))]
pub async fn read(
    State(node): State<NodeHandle>,
    State(logs): State<Arc<TaskLogs>>,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Json<LogPage>, ApiError> {
    let Query(query) = query?;
    let id = known_task(&node, &id)?;
    let kept = logs.read(&id, query.from, page(query.limit)?);
    let next = kept.last().map_or(query.from, |(cursor, _)| cursor + 1);
    let entries = kept.iter().map(|(_, entry)| SignedLogEntry::clone(entry)).collect();
    Ok(Json(LogPage { entries, next }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
pub struct StreamQuery {
    /// Entries from this cursor on (default 0: all that are kept, then new ones).
    from: u64,
}

#[utoipa::path(get, path = "/v1/tasks/{id}/logs/stream", params(("id" = String, Path, description = "Task id, hex"), StreamQuery),
    responses((status = 200, description = "text/event-stream of `log` events: a signed entry each, its cursor as the event id", content_type = "text/event-stream"),
        (status = 404, description = "No such task"), (status = 503, description = "As many streams are open as the node serves")))]
pub async fn stream(
    State(node): State<NodeHandle>,
    State(logs): State<Arc<TaskLogs>>,
    State(guard): State<Arc<Guard>>,
    Path(id): Path<String>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, axum::Error>>>, ApiError> {
    let Query(query) = query?;
    let task = known_task(&node, &id)?;
    let place = guard.stream()?;
    // Subscribed before the first read, so no entry can slip in between unannounced.
    let wakeups = logs.written.subscribe();
    let follow = Follow { logs, task, next: query.from, wakeups, _place: place };
    let events = futures::stream::unfold(follow, Follow::next_batch).flat_map(futures::stream::iter);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// A stream's place in one task's log.
struct Follow {
    logs: Arc<TaskLogs>,
    task: TaskId,
    next: u64,
    wakeups: broadcast::Receiver<TaskId>,
    /// The stream's place among those the node serves, given back when it is dropped.
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl Follow {
    /// The kept entries from the stream's cursor on, waiting for new ones when there are none.
    async fn next_batch(mut self) -> Option<(Vec<Result<Event, axum::Error>>, Follow)> {
        loop {
            let batch = self.logs.read(&self.task, self.next, MAX_PAGE);
            if let Some((last, _)) = batch.last() {
                self.next = last + 1;
                let events = batch
                    .iter()
                    .map(|(cursor, entry)| Event::default().event("log").id(cursor.to_string()).json_data(&**entry))
                    .collect();
                return Some((events, self));
            }
            if !self.written_to().await {
                return None;
            }
        }
    }

    /// Waits until the task may have new entries; false once no more can come.
    async fn written_to(&mut self) -> bool {
        loop {
            match self.wakeups.recv().await {
                Ok(task) if task == self.task => return true,
                Ok(_) => {}
                // The missed wakeups may have been this task's; the store says.
                Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ogpu_chain::state::{Executor, RaceEntry, Stage, VerifierSlot};
    use ogpu_core::spec::{Market, TaskSpec, Workload, WorkloadKind};
    use ogpu_core::tasklog::limits;
    use ogpu_core::tasklog::{LogBody, LogEntry};
    use ogpu_core::{Amount, BlobHash, Hash, PoolId, SecretKey};

    use super::*;

    fn task(n: u32) -> TaskId {
        TaskId(Hash::of_bytes(&n.to_le_bytes()))
    }

    fn entry(task: TaskId, seq: u64) -> SignedLogEntry {
        LogEntry::sign(&SecretKey::from_name("p"), task, seq, 0, LogBody::Started)
    }

    fn seqs(kept: &Kept, task: TaskId) -> Vec<u64> {
        kept.read(&task, 0, usize::MAX).iter().map(|(_, e)| e.entry.seq).collect()
    }

    #[test]
    fn a_task_keeps_its_latest_entries_and_ignores_repeats() {
        let mut kept = Kept::default();
        let first: Vec<_> = (0..ENTRIES_PER_TASK as u64).map(|seq| entry(task(0), seq)).collect();
        assert_eq!(kept.append(task(0), first).unwrap(), ENTRIES_PER_TASK);
        assert_eq!(
            kept.append(task(0), vec![entry(task(0), 5), entry(task(0), 2_000), entry(task(0), 2_000)]).unwrap(),
            1
        );
        let seqs = seqs(&kept, task(0));
        assert_eq!((seqs.len(), seqs[0], seqs[ENTRIES_PER_TASK - 1]), (ENTRIES_PER_TASK, 1, 2_000));
        assert_eq!(kept.append(task(0), vec![entry(task(0), 0)]), Ok(1), "a dropped entry is new again");
        let after: Vec<_> = kept.read(&task(0), 2_000, 10).iter().map(|(cursor, _)| *cursor).collect();
        assert_eq!(after, [2_000, 2_001], "cursors count on");
    }

    #[test]
    fn the_task_least_recently_written_to_is_dropped_first() {
        let mut kept = Kept::default();
        for n in 0..TASKS as u32 {
            kept.append(task(n), vec![entry(task(n), 0)]).unwrap();
        }
        kept.append(task(0), vec![entry(task(0), 1)]).unwrap();
        assert_eq!(kept.append(task(0), vec![entry(task(0), 1)]), Ok(0), "a repeat is no write");
        kept.append(task(TASKS as u32), vec![entry(task(TASKS as u32), 0)]).unwrap();
        assert_eq!(kept.tasks.len(), TASKS);
        assert!(seqs(&kept, task(1)).is_empty(), "task 1 was written to longest ago");
        assert_eq!(seqs(&kept, task(0)), [0, 1]);
        assert_eq!(kept.recency.len(), TASKS, "one recency mark per task");
        assert!(
            kept.append(task(7), Vec::new()) == Ok(0) && kept.tasks.len() == TASKS,
            "nothing to keep drops nothing"
        );
    }

    fn who(name: &str) -> Address {
        Address::of(&SecretKey::from_name(name).public())
    }

    fn pool_job() -> Task {
        let workload = Workload {
            kind: WorkloadKind::Wasm,
            program: BlobHash(Hash::ZERO),
            inputs: Default::default(),
            args: vec![],
            env: Default::default(),
            training: None,
            limits: Default::default(),
        };
        let spec = TaskSpec {
            name: "job".into(),
            workload,
            market: Market::Pool { pool: PoolId(Hash::ZERO) },
            requirements: Default::default(),
            deadline_blocks: 10,
            verification: Default::default(),
            private: None,
        };
        let racer = RaceEntry { provider: who("racer"), commitment: Hash::ZERO, claim: None };
        Task {
            client: who("client"),
            spec,
            submitted_at: 0,
            price_cap: Amount::ZERO,
            escrow: Amount::ZERO,
            verification_budget: Amount::ZERO,
            client_lock: Amount::ZERO,
            phase: Phase::Racing { commit_end: 1, reveal_end: 2, entries: vec![racer] },
            executors: vec![Executor {
                provider: who("executor"),
                price: Amount::ZERO,
                stage: Stage::Started,
                stage_due: 1,
                sealed: None,
            }],
            excluded: Default::default(),
            rounds: 1,
            verifiers: vec![VerifierSlot {
                verifier: who("verifier"),
                weight: Amount::ZERO,
                segment: None,
                reports: BTreeMap::new(),
            }],
            challenge: None,
            due: None,
            keys: BTreeMap::new(),
        }
    }

    #[test]
    fn executors_committed_racers_and_verifiers_of_a_live_task_are_parties() {
        let mut task = pool_job();
        for party in ["executor", "racer", "verifier"] {
            assert!(is_party(&task, &who(party)), "{party}");
        }
        for outsider in ["client", "subscriber", "stranger"] {
            assert!(!is_party(&task, &who(outsider)), "{outsider}");
        }
        task.phase = Phase::Done(ogpu_chain::state::Outcome::Cancelled);
        assert!(!is_party(&task, &who("executor")), "nobody posts for a task that is over");
    }

    #[test]
    fn a_provider_past_its_share_of_kept_bytes_keeps_nothing_more() {
        let mut kept = Kept::default();
        let (greedy, other) = (SecretKey::from_name("greedy"), SecretKey::from_name("other"));
        let long = |key: &SecretKey, task: TaskId, seq| {
            let body = LogBody::Log { stream: "stdout".into(), line: "x".repeat(limits::LINE_BYTES) };
            LogEntry::sign(key, task, seq, 0, body)
        };
        let mut seq = 0;
        let over = loop {
            let batch: Vec<_> = (seq..seq + 64).map(|seq| long(&greedy, task(seq as u32 / 1_000), seq)).collect();
            let before = kept.bytes;
            match kept.append(task(seq as u32 / 1_000), batch) {
                Ok(stored) => assert_eq!(stored, 64),
                Err(over) => {
                    assert_eq!(kept.bytes, before, "a refused batch keeps nothing");
                    break over;
                }
            }
            seq += 64;
        };
        assert_eq!(over, OverQuota(greedy.public()));
        assert!(seq as usize * limits::LINE_BYTES >= PROVIDER_BYTES / 2, "refused only near the share: {seq}");
        assert_eq!(kept.append(task(99), vec![long(&other, task(99), 0)]), Ok(1), "others still post");
        assert!(kept.bytes <= TOTAL_BYTES && kept.by_provider[&greedy.public()] <= PROVIDER_BYTES);
    }
}
