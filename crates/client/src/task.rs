//! Submitting a task and following it to its end: what it reserves ([`quote`]), its
//! files uploaded where the store lacks them (sealed first, for a private task) and the
//! spec put on chain ([`submit`]), then a [`TaskHandle`] to wait for it, hand a private
//! task's keys to its workers, read its progress and logs, fetch its result, or cancel
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ogpu_chain::state::{Outcome, Phase, Stage, Task};
use ogpu_chain::{Event, Params, reservation};
use ogpu_core::manifest::OutputFile;
use ogpu_core::sealed::{ContentKey, ReaderSecret};
use ogpu_core::spec::{Market, TaskSpec};
use ogpu_core::tasklog::{LogBody, SignedLogEntry};
use ogpu_core::tx::TxBody;
use ogpu_core::{Address, Amount, BlobHash, Hash, TaskId};
use rand_core::OsRng;

use crate::private::{BlobKeys, KeysError};
use crate::spec::ResolvedSpec;
use crate::transfer::{Progress, TransferError};
use crate::types::TaskDetail;
use crate::{Client, ClientError, FeedItem, SseEvent, Wallet, WalletError};

/// What went wrong submitting or following a task; [`TaskError::name`] gives a stable
/// name for each.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A call to the API failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Sending a transaction failed, or the chain refused it.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// Reading, uploading or downloading one of the task's files failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A file to upload is larger than the chain's blob limit; nothing was uploaded.
    #[error("{path}: {size} bytes; the chain takes blobs of at most {max} bytes")]
    TooBig {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The chain's `max_blob_bytes` now.
        max: u64,
    },
    /// The spec names by hash a blob that the store lacks and no local file provides.
    #[error("the spec names blob blake3:{0}, which the node's store does not hold; upload it first")]
    NotStored(BlobHash),
    /// The balance does not cover what the task would reserve; nothing was submitted.
    #[error("too little balance: the task reserves {reserved} oGPU and {holder} holds {balance} oGPU")]
    TooLittleBalance {
        /// What the task would reserve: escrow and trust lock together.
        reserved: Amount,
        /// What the account may spend now.
        balance: Amount,
        /// The account that would pay.
        holder: Address,
    },
    /// What the task would reserve does not fit in an [`Amount`].
    #[error("the task's reservation overflows")]
    Overflow,
    /// The task was still running when the timeout given to [`TaskHandle::wait`] or
    /// [`TaskHandle::follow`] ran out.
    #[error("task {id} did not end within {seconds} s")]
    Timeout {
        /// The task.
        id: TaskId,
        /// The timeout, in whole seconds.
        seconds: u64,
    },
    /// A private task's keys are missing or do not open.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// A private task's result opens only with its client's key, and none was given.
    #[error("task {0} is private: its result opens only with its client's key")]
    Private(TaskId),
    /// A private task was submitted, but its client's copy of the keys could not be put on
    /// chain: no worker could ever be handed them, so it was cancelled (or, if the cancel
    /// failed too, ends refunded at its first start deadline).
    #[error("task {id} was submitted but its keys could not be kept ({source}); {}", if *cancelled { "it was cancelled" } else { "it will end refunded" })]
    KeysNotKept {
        /// The task.
        id: TaskId,
        /// Why posting the keys failed.
        source: Box<WalletError>,
        /// Whether the task was cancelled.
        cancelled: bool,
    },
    /// A private spec whose market is a pool: nobody knows who will race a pool job until it
    /// is posted, so there is no one to hand its keys to.
    #[error("a pool job cannot be private: say private = false in its spec")]
    PrivatePool,
    /// A private spec names a blob by hash with no local file: only files can be sealed.
    #[error("a private task's files are sealed at submit, and blob blake3:{0} is named by hash, not by a file")]
    NotAFile(BlobHash),
    /// The task has no result to fetch: it is still running, or ended other than
    /// completed.
    #[error("task {id} has no result: {why}")]
    NoResult {
        /// The task.
        id: TaskId,
        /// Its phase, or how it ended.
        why: String,
    },
}

impl TaskError {
    /// A stable name for what went wrong: the API's error name when the API answered
    /// (`insufficient_funds`, `unknown_task`, ...), the chain's `refused` for a
    /// transaction it refused, and this crate's own names otherwise.
    pub fn name(&self) -> &str {
        match self {
            TaskError::Client(error) | TaskError::Wallet(WalletError::Client(error)) => client_error_name(error),
            TaskError::Transfer(error) => error.client_error().map_or("transfer", client_error_name),
            TaskError::Wallet(WalletError::Refused { .. }) => "refused",
            TaskError::Wallet(WalletError::Timeout { .. }) | TaskError::Timeout { .. } => "timeout",
            TaskError::Wallet(WalletError::ChainId(_)) => "bad_chain_id",
            TaskError::TooBig { .. } => "blob_too_large",
            TaskError::NotStored(_) => "unknown_blob",
            TaskError::TooLittleBalance { .. } => "insufficient_funds",
            TaskError::Overflow => "overflow",
            TaskError::NoResult { .. } => "no_result",
            TaskError::Keys(_) => "keys",
            TaskError::Private(_) => "private",
            TaskError::NotAFile(_) => "not_a_file",
            TaskError::KeysNotKept { .. } => "keys_not_kept",
            TaskError::PrivatePool => "private_pool",
        }
    }
}

fn client_error_name(error: &ClientError) -> &str {
    match error {
        ClientError::Api { error, .. } => error,
        ClientError::Transport { .. } | ClientError::BadAddress(_) => "network",
        ClientError::Decode { .. } | ClientError::Io(_) => "transfer",
    }
}

/// What submitting a spec takes from a balance, and what the balance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Escrow and trust lock together; unused escrow comes back when the task ends.
    pub reserved: Amount,
    /// What the wallet's account may spend now.
    pub balance: Amount,
}

/// What submitting `spec` from `wallet` would reserve under the chain's parameters now.
pub fn quote(wallet: &Wallet, spec: &TaskSpec) -> Result<Quote, TaskError> {
    quote_under(wallet, &wallet.client().params()?, spec)
}

fn quote_under(wallet: &Wallet, params: &Params, spec: &TaskSpec) -> Result<Quote, TaskError> {
    let client = wallet.client();
    let (price_cap, pooled) = match &spec.market {
        Market::Auction { max_price, .. } => (*max_price, false),
        Market::Pool { pool } => (client.pool(pool)?.pool.spec.price_per_job, true),
    };
    let reserved = reservation(params, spec, price_cap, pooled).and_then(|r| r.total()).ok_or(TaskError::Overflow)?;
    let balance = client.account(&wallet.address())?.balance;
    Ok(Quote { reserved, balance })
}

/// Submits a resolved spec: checks every file fits the chain's blob limit, every blob it
/// names by hash is stored and the balance covers the reservation, uploads the files the
/// store lacks (reporting each read to `on_upload`), and puts the task on chain. Nothing
/// is reserved unless every check passed.
///
/// A private spec's files are all sealed, each under a fresh key, and uploaded as they are
/// sealed; the task names the sealed copies and the client's reader key, and the client's
/// own copy of the keys goes on chain right after it (wrapped to that reader key), from
/// where [`TaskHandle::deliver_keys`] hands them to the task's workers. Should that second
/// transaction fail, no worker can start, and the task ends refunded at its start
/// deadline.
pub fn submit(
    wallet: &Wallet,
    resolved: &ResolvedSpec,
    mut on_upload: impl FnMut(Progress<'_>),
) -> Result<TaskHandle, TaskError> {
    let client = wallet.client();
    let params = client.params()?;
    let max = params.max_blob_bytes;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TaskError::Transfer(TransferError::Io { path, source })
    };
    if resolved.private && matches!(resolved.spec.market, Market::Pool { .. }) {
        return Err(TaskError::PrivatePool);
    }
    let mut missing = BTreeMap::new();
    // A file named twice (as program and input, say) is checked and uploaded once.
    let named: BTreeSet<BlobHash> = resolved.spec.workload.blobs().collect();
    for hash in named {
        let file = resolved.files.get(&hash);
        if resolved.private && file.is_none() {
            return Err(TaskError::NotAFile(hash));
        }
        if !resolved.private && client.has_blob(&hash)? {
            continue;
        }
        let path = file.ok_or(TaskError::NotStored(hash))?;
        let size = std::fs::metadata(path).map_err(io(path))?.len();
        if size > max {
            return Err(TaskError::TooBig { path: path.clone(), size, max });
        }
        missing.insert(hash, path);
    }
    let Quote { reserved, balance } = quote_under(wallet, &params, &resolved.spec)?;
    if balance < reserved {
        return Err(TaskError::TooLittleBalance { reserved, balance, holder: wallet.address() });
    }
    if !resolved.private {
        for path in missing.values() {
            crate::transfer::upload(client, path, &mut on_upload)?;
        }
        let id = TaskId(wallet.settle(TxBody::SubmitTask { spec: resolved.spec.clone() }, "the task")?);
        return Ok(TaskHandle::new(client.clone(), id));
    }
    let (spec, keys) = seal_files(wallet, resolved, &missing, &mut on_upload)?;
    let id = TaskId(wallet.settle(TxBody::SubmitTask { spec: spec.clone() }, "the task")?);
    let (me, reader) = (wallet.address(), ReaderSecret::derive(wallet.key()).public());
    let own = keys.wrap(&id, &spec, &me, &reader).expect("every blob of the spec was sealed here");
    if let Err(error) = wallet.settle(TxBody::PostKeys { task: id, to: me, keys: own }, "the client's copy of the keys")
    {
        // Without its keys nobody can work on it: take back what it reserved now.
        let cancelled = wallet.settle(TxBody::CancelTask { task: id }, "the cancel of the keyless task").is_ok();
        return Err(TaskError::KeysNotKept { id, source: Box::new(error), cancelled });
    }
    Ok(TaskHandle::new(client.clone(), id))
}

/// Seals and uploads each of a private spec's `files` under a fresh key; returns the spec
/// naming the sealed copies and the client's reader key, and the key of each copy.
fn seal_files(
    wallet: &Wallet,
    resolved: &ResolvedSpec,
    files: &BTreeMap<BlobHash, &PathBuf>,
    on_upload: &mut impl FnMut(Progress<'_>),
) -> Result<(TaskSpec, BlobKeys), TaskError> {
    let mut sealed_copy = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for (plain, path) in files {
        let key = ContentKey::generate(&mut OsRng);
        let file = File::open(path).map_err(|source| TransferError::Io { path: path.to_path_buf(), source })?;
        let size = file.metadata().map_err(|source| TransferError::Io { path: path.to_path_buf(), source })?.len();
        // Progress counts sealed bytes sent, of the sealed size.
        let size = Some(ogpu_core::sealed::sealed_len(size));
        let report = |done| on_upload(Progress { path, done, size });
        let (sealed, _) = crate::transfer::upload_sealed(wallet.client(), file, &key, path, report)?;
        sealed_copy.insert(*plain, sealed);
        keys.insert(sealed, key);
    }
    let mut spec = resolved.spec.clone();
    let copy_of = |plain: &BlobHash| sealed_copy[plain];
    spec.workload.program = copy_of(&spec.workload.program);
    for blob in spec.workload.inputs.values_mut() {
        *blob = copy_of(blob);
    }
    spec.private = Some(ReaderSecret::derive(wallet.key()).public());
    Ok((spec, BlobKeys::new(keys)))
}

/// One step a provider reported: its number, the steps planned, and metrics such as
/// `loss`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The step's number, as the provider counts them.
    pub step: u64,
    /// How many steps the provider plans, when it says.
    pub total: Option<u64>,
    /// Named values at this step (`loss`, `accuracy`, ...), in the provider's order.
    pub metrics: Vec<(String, f64)>,
}

/// A task on chain, by id: everything a client does with it after submitting.
#[derive(Clone)]
pub struct TaskHandle {
    client: Client,
    id: TaskId,
}

impl TaskHandle {
    /// A handle on task `id`, read through `client`: for a task submitted earlier or by
    /// someone else.
    pub fn new(client: Client, id: TaskId) -> TaskHandle {
        TaskHandle { client, id }
    }

    /// The task's id: the hash of the transaction that submitted it.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task, its phase and every event about it.
    pub fn detail(&self) -> Result<TaskDetail, ClientError> {
        self.client.task(&self.id)
    }

    /// How the task ended, or `None` while it runs.
    pub fn outcome(&self) -> Result<Option<Outcome>, ClientError> {
        Ok(ended(&self.detail()?.view.task.phase))
    }

    /// Waits until the task ends, for at most `timeout` when one is given, and says how it
    /// ended.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Outcome, TaskError> {
        self.follow(timeout, |_, _| {})
    }

    /// [`TaskHandle::wait`], handing each chain event about the task to `on_event` (with
    /// its block height) as it is finalized.
    pub fn follow(&self, timeout: Option<Duration>, on_event: impl FnMut(u64, &Event)) -> Result<Outcome, TaskError> {
        self.follow_with(timeout, || {}, on_event)
    }

    /// [`TaskHandle::follow`] by the task's client, handing a private task's keys to every
    /// worker that lacks them: once subscribed, again at each event, and at each of the
    /// stream's keep-alives (15 s apart at most), so keys that could not be handed on are
    /// tried again even when no event follows. Failures are logged.
    pub fn follow_delivering(
        &self,
        wallet: &Wallet,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(u64, &Event),
    ) -> Result<Outcome, TaskError> {
        let deliver = || {
            if let Err(error) = self.deliver_keys(wallet) {
                tracing::warn!(task = %self.id, %error, "cannot hand on the task's keys yet");
            }
        };
        self.follow_with(timeout, deliver, |height, event| {
            on_event(height, event);
            deliver();
        })
    }

    /// [`TaskHandle::follow_delivering`] on a thread of its own, for a client that does
    /// not follow the task itself. A stream the node closes, or that fails, is opened
    /// again after a pause; the thread ends with the task, and returns how it ended.
    pub fn deliver_keys_in_background(&self, wallet: Arc<Wallet>) -> std::thread::JoinHandle<Outcome> {
        let task = self.clone();
        std::thread::spawn(move || {
            loop {
                match task.follow_delivering(&wallet, None, |_, _| {}) {
                    Ok(outcome) => return outcome,
                    Err(error) => tracing::warn!(task = %task.id, %error, "following the task to hand out its keys"),
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    }

    /// [`TaskHandle::follow`], calling `tick` once the event stream is open (what it does
    /// is then followed by events, not lost before them) and at each keep-alive.
    fn follow_with(
        &self,
        timeout: Option<Duration>,
        mut tick: impl FnMut(),
        mut on_event: impl FnMut(u64, &Event),
    ) -> Result<Outcome, TaskError> {
        let started = Instant::now();
        let timed_out = || TaskError::Timeout { id: self.id, seconds: timeout.unwrap_or_default().as_secs() };
        // Subscribe first, then read the task: an end finalized in between shows in one or the other.
        let events = self.client.events_within(Some(&self.id), timeout)?;
        tick();
        if let Some(outcome) = self.outcome()? {
            return Ok(outcome);
        }
        for event in events {
            let event = match event {
                Ok(event) => event,
                Err(_) if timeout.is_some_and(|t| started.elapsed() >= t) => return Err(timed_out()),
                Err(error) => return Err(ClientError::Io(error).into()),
            };
            if event.name == SseEvent::KEEP_ALIVE {
                tick();
                continue;
            }
            let Some(FeedItem::Chain { height, event }) = FeedItem::parse(&event) else { continue };
            on_event(height, &event);
            if let Event::TaskEnded { outcome, .. } = event {
                return Ok(outcome);
            }
        }
        // The stream ended: the node closed it, or the timeout cut it short.
        match self.outcome()? {
            Some(outcome) => Ok(outcome),
            None if timeout.is_some_and(|t| started.elapsed() >= t) => Err(timed_out()),
            None => Err(ClientError::Decode {
                what: format!("the events of task {}", self.id),
                reason: "the API closed the stream before the task ended".into(),
            }
            .into()),
        }
    }

    /// Every log entry the node keeps for the task, oldest first.
    pub fn logs(&self) -> Result<Vec<SignedLogEntry>, ClientError> {
        let mut entries = Vec::new();
        let mut from = 0;
        loop {
            let page = self.client.task_logs(&self.id, from)?;
            if page.entries.is_empty() {
                return Ok(entries);
            }
            entries.extend(page.entries);
            from = page.next;
        }
    }

    /// The task's log entries from the first kept one on, then each as it arrives; the
    /// iterator ends only when the node closes the stream.
    pub fn follow_logs(
        &self,
    ) -> Result<impl Iterator<Item = Result<SignedLogEntry, ClientError>> + Send + use<>, ClientError> {
        let stream = self.client.follow_task_logs(&self.id)?;
        Ok(stream.filter_map(|event| match event {
            Ok(event) => log_entry(&event).map(Ok),
            Err(error) => Some(Err(ClientError::Io(error))),
        }))
    }

    /// The steps providers reported, with their metrics: those kept so far when the task
    /// has ended, otherwise each as it arrives until an executor reports that it finished
    /// or failed, or (checked at each of the stream's keep-alives) until the task ended some
    /// other way. Only entries whose signature holds count.
    pub fn progress(&self) -> Result<Box<dyn Iterator<Item = Result<Step, ClientError>> + Send>, ClientError> {
        let entries = self.verified_entries()?;
        Ok(Box::new(entries.filter_map(|entry| entry.map(|entry| step_of(&entry)).transpose())))
    }

    /// The task's log entries whose signature holds, as [`TaskHandle::progress`] reads
    /// them: those kept so far when the task has ended, otherwise each as it arrives until
    /// an executor finished or failed, or the task ended some other way.
    pub fn verified_entries(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<SignedLogEntry, ClientError>> + Send>, ClientError> {
        self.verified_entries_while(|| true)
    }

    /// [`TaskHandle::verified_entries`], ending early once `wanted` says no: it is asked at
    /// each of the stream's keep-alives (15 s apart at most), so a reader whose consumer has
    /// gone does not hold a stream to the node until the task ends.
    pub fn verified_entries_while(
        &self,
        mut wanted: impl FnMut() -> bool + Send + 'static,
    ) -> Result<Box<dyn Iterator<Item = Result<SignedLogEntry, ClientError>> + Send>, ClientError> {
        if self.outcome()?.is_some() {
            return Ok(Box::new(self.logs()?.into_iter().filter(|entry| entry.verify().is_ok()).map(Ok)));
        }
        let mut events = self.client.follow_task_logs(&self.id)?;
        let task = self.clone();
        let mut over = false;
        // Ends right after an executor's last entry, without waiting for one more.
        let live = std::iter::from_fn(move || {
            while !over {
                let event = match events.next()? {
                    Ok(event) => event,
                    Err(error) => return Some(Err(ClientError::Io(error))),
                };
                if event.name == SseEvent::KEEP_ALIVE {
                    match task.outcome() {
                        Ok(outcome) => over = outcome.is_some() || !wanted(),
                        Err(error) => return Some(Err(error)),
                    }
                    continue;
                }
                let Some(entry) = log_entry(&event).filter(|entry| entry.verify().is_ok()) else { continue };
                over = matches!(entry.entry.body, LogBody::Finished { .. } | LogBody::Failed { .. });
                return Some(Ok(entry));
            }
            None
        });
        Ok(Box::new(live))
    }

    /// Hands a private task's keys to each of its executors and verifiers that lacks them,
    /// wrapped to the reader key each registered; `wallet` must be the task's client's.
    /// Returns those it posted keys to: none for a public task or one that has ended. A
    /// worker without a reader key is passed over (the chain lets none bid, and a verifier
    /// without one cannot be given keys). A worker whose keys cannot be posted does not
    /// stop the others: each is tried, and the first failure is returned.
    pub fn deliver_keys(&self, wallet: &Wallet) -> Result<Vec<Address>, TaskError> {
        let task = self.detail()?.view.task;
        if task.spec.private.is_none() || ended(&task.phase).is_some() {
            return Ok(Vec::new());
        }
        let lacking = workers(&task).filter(|worker| !task.keys.contains_key(worker)).collect::<BTreeSet<_>>();
        if lacking.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.clients_keys(&task, wallet)?;
        let (mut posted, mut failed) = (Vec::new(), None);
        for worker in lacking {
            match self.post_keys(wallet, &task, &keys, worker) {
                Ok(true) => posted.push(worker),
                Ok(false) => tracing::warn!(task = %self.id, %worker, "no reader key registered: no keys for it"),
                Err(error) => {
                    tracing::warn!(task = %self.id, %worker, %error, "cannot hand the task's keys to a worker");
                    failed.get_or_insert(error);
                }
            }
        }
        failed.map_or(Ok(posted), Err)
    }

    /// The task's content keys, from the copy its client keeps on chain, opened with
    /// `wallet`'s reader secret (the client's).
    fn clients_keys(&self, task: &Task, wallet: &Wallet) -> Result<BlobKeys, KeysError> {
        BlobKeys::open(&self.id, task, &wallet.address(), &ReaderSecret::derive(wallet.key()))
    }

    /// Posts `keys` to `worker`, wrapped to its reader key; `false` if it has none.
    fn post_keys(&self, wallet: &Wallet, task: &Task, keys: &BlobKeys, worker: Address) -> Result<bool, TaskError> {
        let Some(reader) = self.client.provider(&worker)?.view.provider.profile.reader else { return Ok(false) };
        let envelopes = keys.wrap(&self.id, &task.spec, &worker, &reader).ok_or(KeysError::MissingKey)?;
        let body = TxBody::PostKeys { task: self.id, to: worker, keys: envelopes };
        wallet.settle(body, &format!("the keys for {worker}"))?;
        Ok(true)
    }

    /// Downloads the task's result into `dir`, each file checked against the hash its
    /// manifest gives and the manifest against the result hash on chain; returns the paths
    /// written. A private task's result is opened with the keys its client keeps on chain:
    /// `client` must be the task's client's wallet.
    pub fn result(&self, dir: &Path, client: Option<&Wallet>) -> Result<Vec<PathBuf>, TaskError> {
        let task = self.detail()?.view.task;
        let output: Hash = match ended(&task.phase) {
            Some(Outcome::Completed { output }) => output,
            Some(other) => return Err(TaskError::NoResult { id: self.id, why: format!("it ended {other:?}") }),
            None => return Err(TaskError::NoResult { id: self.id, why: format!("it is {}", task.phase.name()) }),
        };
        std::fs::create_dir_all(dir).map_err(|source| TransferError::Io { path: dir.to_path_buf(), source })?;
        let files = match (&task.spec.private, client) {
            (None, _) => crate::transfer::fetch(&self.client, &output, None, dir)?,
            (Some(_), None) => return Err(TaskError::Private(self.id)),
            (Some(_), Some(wallet)) => self.fetch_sealed(&task, &output, wallet, dir)?,
        };
        Ok(files.iter().map(|file| dir.join(&file.path)).collect())
    }

    /// Opens a sealed copy of `output` and writes it into `dir`: each executor's that
    /// revealed it is tried in turn, since the chain cannot tell a copy that opens from
    /// one that does not.
    fn fetch_sealed(
        &self,
        task: &Task,
        output: &Hash,
        wallet: &Wallet,
        dir: &Path,
    ) -> Result<Vec<OutputFile>, TaskError> {
        let keys = self.clients_keys(task, wallet)?;
        let copies = task.executors.iter().filter_map(|executor| match (&executor.stage, executor.sealed) {
            (Stage::Revealed(claim), Some(index)) if claim.output == *output => Some((executor.provider, index)),
            _ => None,
        });
        let mut failed = None;
        for (executor, index) in copies {
            let key = keys.result_key(&self.id, &task.spec, &executor).ok_or(KeysError::MissingKey)?;
            match crate::transfer::fetch(&self.client, output, Some((index, key)), dir) {
                Ok(files) => return Ok(files),
                Err(error) => {
                    tracing::warn!(task = %self.id, %executor, %error, "its sealed copy of the result does not open");
                    failed.get_or_insert(error);
                }
            }
        }
        let why = "no executor that revealed it left a sealed copy".to_string();
        Err(failed.map_or(TaskError::NoResult { id: self.id, why }, TaskError::from))
    }

    /// Cancels the task before any provider sealed a bid for it; its escrow and trust lock
    /// come back to the client.
    pub fn cancel(&self, wallet: &Wallet) -> Result<(), TaskError> {
        wallet.settle(TxBody::CancelTask { task: self.id }, "the cancel")?;
        Ok(())
    }

    /// Raises the task's price cap to `max_price` while it is being auctioned (for the
    /// round under way and any later one), reserving what the higher cap adds to its
    /// escrow, verification budget and trust lock.
    pub fn top_up(&self, wallet: &Wallet, max_price: Amount) -> Result<(), TaskError> {
        wallet.settle(TxBody::TopUpTask { task: self.id, max_price }, "the top-up")?;
        Ok(())
    }
}

/// A task's executors and chosen verifiers: who may be given its keys.
fn workers(task: &Task) -> impl Iterator<Item = Address> + '_ {
    task.executors.iter().map(|e| e.provider).chain(task.verifiers.iter().map(|slot| slot.verifier))
}

fn ended(phase: &Phase) -> Option<Outcome> {
    match phase {
        Phase::Done(outcome) => Some(outcome.clone()),
        _ => None,
    }
}

/// The log entry a `log` event of a task's log stream carries.
fn log_entry(event: &SseEvent) -> Option<SignedLogEntry> {
    serde_json::from_str(&event.data).ok()
}

/// The step an entry reports, if it reports one (its signature is checked by the caller).
pub fn step_of(entry: &SignedLogEntry) -> Option<Step> {
    match &entry.entry.body {
        LogBody::Step { step, total, metrics } => Some(Step { step: *step, total: *total, metrics: metrics.clone() }),
        _ => None,
    }
}
