//! The agent's loop. It follows the chain through the node's event feed and answers each
//! event that concerns it: a new auction gets a sealed bid (revealed once the commit
//! window closes), an award gets a start and a run, a pool job gets raced, a finished run
//! gets its outputs uploaded and its result committed then revealed, and a call to verify
//! gets a re-run and a report.
//!
//! One thread decides; runs happen on worker threads, one per slot, and come back as
//! inputs. Every transaction goes through the one [`Wallet`], so nonces stay in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use ogpu_chain::Event;
use ogpu_chain::MAX_REASON;
use ogpu_chain::state::{Phase, Pool, Stage, Task};
use ogpu_client::private::{BlobKeys, KeysError};
use ogpu_client::types::PoolView;
use ogpu_client::wallet::{Verdict, Wallet, WalletError};
use ogpu_client::{Client, FeedItem};
use ogpu_core::sealed::ReaderSecret;
use ogpu_core::spec::{DeviceProfile, Market, Ratio, TaskSpec, VerificationPolicy};
use ogpu_core::tx::{ResultClaim, StakeRole, TxBody, VerificationReport, bid_commitment, result_commitment};
use ogpu_core::{Address, Amount, BlobHash, Hash, PoolId, TaskId};
use ogpu_runtime::Runtimes;
use rand_core::{OsRng, RngCore};

use crate::config::{PoolChoice, ProviderConfig};
use crate::feed;
use crate::fit::fits;
use crate::run::{self, Done, Purpose, Ran, RunRequest};
use crate::verify::{self, CheckRequest, Subject};

/// How long setting up (registering, staking, joining pools) waits for each transaction.
const SETUP_TX_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error("{what} was refused on chain: {reason}")]
    Refused { what: &'static str, reason: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("no runtime could start: {0}")]
    Runtime(#[from] ogpu_runtime::TaskError),
}

/// What the decision loop reacts to.
pub(crate) enum Input {
    Feed(FeedItem),
    /// A worker finished.
    Finished {
        task: TaskId,
        done: Done,
    },
}

/// Why the agent runs a task.
#[derive(Debug, Clone)]
enum Role {
    /// Awarded in an auction.
    Executor,
    /// Racing for a pool job; a commit counts only up to `commit_end`.
    Racer { commit_end: u64 },
    /// Chosen to verify these executors' claims by running the task again and comparing
    /// results, within the policy's tolerance.
    Verifier { subjects: Vec<Subject>, tolerance: Ratio },
    /// Chosen to verify these executors' training by replaying segment `segment` of it.
    Checker { segment: u32, tolerance: Ratio, subjects: Vec<Subject> },
}

enum WorkStage {
    /// A private task's worker waits for the client to post its keys; it holds a slot.
    AwaitingKeys,
    Running {
        cancel: Arc<AtomicBool>,
    },
    Committed {
        claim: ResultClaim,
        salt: Hash,
        /// Where the sealed copy of a private task's result lies.
        sealed: Option<BlobHash>,
    },
}

struct Work {
    role: Role,
    stage: WorkStage,
    /// Whether the claim carries the run's checkpoint trace (proof-of-learning auctions).
    with_trace: bool,
}

/// A bid sealed on chain. It holds no slot: a provider bids on every auction it could
/// run, and decides when the reveal is due whether it still has a slot for the task.
struct SealedBid {
    price: Amount,
    salt: Hash,
    commit_end: u64,
    reveal_end: u64,
}

pub struct Agent {
    config: ProviderConfig,
    wallet: Arc<Wallet>,
    runtimes: Arc<Runtimes>,
    profile: DeviceProfile,
    /// Opens the keys of private tasks; its public half is in the registered profile.
    reader: ReaderSecret,
    pools: PoolChoice,
    subscribed: BTreeSet<PoolId>,
    height: u64,
    bids: BTreeMap<TaskId, SealedBid>,
    /// Bids revealed and not yet decided, with the height their auction closes: each holds
    /// a slot, since it may win.
    revealed: BTreeMap<TaskId, u64>,
    work: BTreeMap<TaskId, Work>,
    inputs: Receiver<Input>,
    sender: Sender<Input>,
}

fn random_salt() -> Hash {
    let mut salt = [0u8; 32];
    OsRng.fill_bytes(&mut salt);
    Hash(salt)
}

impl Agent {
    /// Registers (or updates) the provider on chain, tops its stake up and joins its
    /// pools; returns the agent ready to [`run`](Agent::run).
    pub fn start(
        config: ProviderConfig,
        key: ogpu_core::SecretKey,
        runtimes: Runtimes,
        profile: DeviceProfile,
    ) -> Result<Agent, AgentError> {
        let pools = config.pool_choice()?;
        let reader = ReaderSecret::derive(&key);
        let profile = DeviceProfile { reader: Some(reader.public()), ..profile };
        let client = Client::new(&config.api).map_err(WalletError::from)?;
        let wallet = Arc::new(Wallet::new(key, client)?);
        let (sender, inputs) = channel();
        let mut agent = Agent {
            config,
            wallet,
            runtimes: Arc::new(runtimes),
            profile,
            reader,
            pools,
            subscribed: BTreeSet::new(),
            height: 0,
            bids: BTreeMap::new(),
            revealed: BTreeMap::new(),
            work: BTreeMap::new(),
            inputs,
            sender,
        };
        agent.register()?;
        agent.join_pools()?;
        Ok(agent)
    }

    pub fn address(&self) -> Address {
        self.wallet.address()
    }

    fn client(&self) -> &Client {
        self.wallet.client()
    }

    fn setup_tx(&self, what: &'static str, body: TxBody) -> Result<(), AgentError> {
        match self.wallet.send_and_wait(body, SETUP_TX_TIMEOUT)? {
            Verdict::Applied => Ok(()),
            Verdict::Refused(reason) => Err(AgentError::Refused { what, reason }),
        }
    }

    fn register(&mut self) -> Result<(), AgentError> {
        let me = self.address();
        let provider = match self.client().provider(&me) {
            Ok(detail) => Some(detail.view.provider),
            Err(error) if error.api_error() == Some("unknown_provider") => None,
            Err(error) => return Err(WalletError::from(error).into()),
        };
        let profile = self.profile.clone();
        let stake = match provider {
            None => {
                self.setup_tx("registering", TxBody::RegisterProvider { profile })?;
                Amount::ZERO
            }
            Some(provider) => {
                if provider.profile != profile {
                    self.setup_tx("updating the device profile", TxBody::UpdateProvider { profile })?;
                }
                provider.stake
            }
        };
        if let Some(top_up) = self.config.stake.checked_sub(stake).filter(|a| !a.is_zero()) {
            self.setup_tx("staking", TxBody::Stake { role: StakeRole::Provider, amount: top_up })?;
        }
        tracing::info!(provider = %me, stake = %self.config.stake, "registered");
        Ok(())
    }

    fn join_pools(&mut self) -> Result<(), AgentError> {
        let listed = self.client().pools(Some(1_000)).map_err(WalletError::from)?;
        for PoolView { id, pool } in listed.pools {
            if pool.subscribers.contains_key(&self.address()) {
                self.subscribed.insert(id);
            } else if self.wants_pool(&id, &pool) {
                self.join_pool(id)?;
            }
        }
        Ok(())
    }

    fn wants_pool(&self, id: &PoolId, pool: &Pool) -> bool {
        let runs_it = self.runtimes.get(pool.spec.kind).is_some();
        runs_it
            && match &self.pools {
                PoolChoice::Every => true,
                PoolChoice::These(ids) => ids.contains(id),
            }
    }

    fn join_pool(&mut self, id: PoolId) -> Result<(), AgentError> {
        self.setup_tx("joining a pool", TxBody::JoinPool { pool: id, stake: self.config.pool_stake })?;
        tracing::info!(pool = %id, "joined");
        self.subscribed.insert(id);
        Ok(())
    }

    /// Runs until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        let client = self.client().clone();
        let sender = self.sender.clone();
        std::thread::spawn(move || feed::follow(&client, &sender));
        while !stop.load(Ordering::Relaxed) {
            let Ok(input) = self.inputs.recv_timeout(Duration::from_millis(200)) else { continue };
            self.on_input(input);
        }
        for work in self.work.values() {
            if let WorkStage::Running { cancel } = &work.stage {
                cancel.store(true, Ordering::Relaxed);
            }
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Feed(FeedItem::Block { height }) => self.on_block(height),
            Input::Feed(FeedItem::Chain { event, .. }) => self.on_event(event),
            Input::Feed(FeedItem::Lagged) => {}
            Input::Finished { task, done: Done::Ran(result) } => self.on_finished(task, result),
            Input::Finished { task, done: Done::Unreadable(reason) } => {
                if let Some(work) = self.work.remove(&task) {
                    self.decline(task, &work.role, reason);
                }
            }
            Input::Finished { task, done: Done::Checked(reports) } => self.on_checked(task, reports),
        }
    }

    /// Sends a transaction the loop does not wait for; a failure is logged, since the
    /// chain's timers deal with whatever was then not done.
    fn send(&self, body: TxBody) {
        let what = body.kind();
        if let Err(error) = self.wallet.send(body) {
            tracing::warn!(%error, what, "cannot send");
        }
    }

    fn task(&self, id: &TaskId) -> Option<Task> {
        self.client()
            .task(id)
            .map(|detail| detail.view.task)
            .map_err(|error| tracing::warn!(%error, task = %id, "cannot read"))
            .ok()
    }

    /// Slots taken by runs and by revealed bids that may still win.
    fn busy_slots(&self) -> usize {
        let running = self.work.values().filter(|w| !matches!(w.stage, WorkStage::Committed { .. })).count();
        running + self.revealed.len()
    }

    /// A finalized block at `height`: whatever is sent now lands at `height + 1` at the
    /// earliest, so reveals go out as soon as `height` reaches the end of their commit window.
    fn on_block(&mut self, height: u64) {
        self.height = height;
        self.revealed.retain(|_, closes| *closes >= height);
        let due: Vec<TaskId> = self.bids.iter().filter(|(_, b)| b.commit_end <= height).map(|(id, _)| *id).collect();
        for task in due {
            let Some(bid) = self.bids.remove(&task) else { continue };
            // An unrevealed bid costs nothing; one that wins a task this machine has no
            // slot for would cost stake when the start times out.
            if self.busy_slots() >= self.config.slots {
                tracing::info!(%task, "every slot is taken; the bid lapses unrevealed");
                continue;
            }
            self.send(TxBody::RevealBid { task, price: bid.price, salt: bid.salt });
            self.revealed.insert(task, bid.reveal_end);
        }
        // Keys whose event this agent missed (its feed lagged), or that never come: each
        // task waiting for its keys is read again, and let go once it no longer wants this
        // worker.
        let waiting: Vec<TaskId> =
            self.work.iter().filter(|(_, w)| matches!(w.stage, WorkStage::AwaitingKeys)).map(|(id, _)| *id).collect();
        for task in waiting {
            self.on_keys(task);
        }
        let committed: Vec<(TaskId, ResultClaim, Hash, Option<BlobHash>, Role)> = self
            .work
            .iter()
            .filter_map(|(id, w)| match &w.stage {
                WorkStage::Committed { claim, salt, sealed } => Some((*id, *claim, *salt, *sealed, w.role.clone())),
                WorkStage::AwaitingKeys | WorkStage::Running { .. } => None,
            })
            .collect();
        for (task, claim, salt, sealed, role) in committed {
            let may_reveal = match role {
                Role::Racer { commit_end } => commit_end <= height,
                // Executors reveal once every executor has committed.
                _ => self.task(&task).is_some_and(|t| t.phase.name() == "revealing"),
            };
            if may_reveal {
                self.work.remove(&task);
                self.send(TxBody::RevealResult { task, claim, salt, sealed });
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let me = self.address();
        match event {
            Event::AuctionOpened { task, commit_end, reveal_end, .. } => {
                self.consider_bid(task, commit_end, reveal_end)
            }
            Event::Awarded { task, provider, .. } => {
                self.revealed.remove(&task);
                if provider == me {
                    self.begin(task, Role::Executor);
                }
            }
            Event::RaceOpened { task, commit_end, .. } => self.consider_race(task, commit_end),
            Event::VerificationStarted { task, verifiers, .. } if verifiers.contains(&me) => self.verify(task),
            Event::KeysPosted { task, to } if to == me => self.on_keys(task),
            Event::PoolCreated { pool } => {
                let listed = self.client().pool(&pool).map(|view| view.pool);
                if let Ok(spec) = listed.map_err(|error| tracing::warn!(%error, %pool, "cannot read the pool"))
                    && self.wants_pool(&pool, &spec)
                {
                    // Not waited for: the loop must stay free for bids and reveals. A join
                    // the chain refuses shows later as refused commits to the pool's races.
                    self.send(TxBody::JoinPool { pool, stake: self.config.pool_stake });
                    self.subscribed.insert(pool);
                }
            }
            Event::TaskEnded { task, .. } => {
                self.bids.remove(&task);
                self.revealed.remove(&task);
                if let Some(Work { stage: WorkStage::Running { cancel }, .. }) = self.work.remove(&task) {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Whether this machine can run the spec: it fits (see [`fits`]), and a runtime takes
    /// its arguments (a backend, engine or device this build and machine have). Taking
    /// what it cannot finish would cost the provider its stake.
    fn can_run(&self, spec: &TaskSpec) -> bool {
        if let Err(why) = fits(spec, &self.profile, &self.config) {
            tracing::debug!(%why, "a task that does not fit this machine");
            return false;
        }
        let workload = &spec.workload;
        let runs =
            self.runtimes.get(workload.kind).map(|runtime| runtime.accepts(&workload.args, spec.requirements.gpus));
        matches!(runs, Some(Ok(())))
    }

    fn consider_bid(&mut self, id: TaskId, commit_end: u64, reveal_end: u64) {
        if self.work.contains_key(&id) {
            return;
        }
        let Some(task) = self.task(&id) else { return };
        if task.excluded.contains(&self.address()) || !self.can_run(&task.spec) {
            return;
        }
        let Some(price) = self.config.pricing.quote(&task.spec) else { return };
        let salt = random_salt();
        let commitment = bid_commitment(&id, &self.address(), price, &salt);
        self.send(TxBody::CommitBid { task: id, commitment });
        tracing::info!(task = %id, %price, "bid");
        self.bids.insert(id, SealedBid { price, salt, commit_end, reveal_end });
    }

    fn consider_race(&mut self, id: TaskId, commit_end: u64) {
        if self.busy_slots() >= self.config.slots || self.work.contains_key(&id) {
            return;
        }
        let Some(task) = self.task(&id) else { return };
        let in_pool =
            matches!(&task.spec.market, ogpu_core::spec::Market::Pool { pool } if self.subscribed.contains(pool));
        if in_pool && !task.excluded.contains(&self.address()) && self.can_run(&task.spec) {
            self.start_run_of(id, task.spec, Role::Racer { commit_end }, None);
        }
    }

    fn verify(&mut self, id: TaskId) {
        let Some(task) = self.task(&id) else { return };
        let subjects: Vec<Subject> = task
            .executors
            .iter()
            .filter_map(|e| match e.stage {
                Stage::Revealed(claim) => Some(Subject { executor: e.provider, claim, sealed: e.sealed }),
                _ => None,
            })
            .collect();
        let me = self.address();
        let segment = task.verifiers.iter().find(|slot| slot.verifier == me).and_then(|slot| slot.segment);
        let role = match (segment, task.spec.verification) {
            (Some(segment), VerificationPolicy::ProofOfLearning { tolerance, .. }) => {
                Role::Checker { segment, tolerance, subjects }
            }
            (_, policy) => Role::Verifier { subjects, tolerance: policy.tolerance() },
        };
        self.begin_with(id, task, role);
    }

    /// Starts work on a task won or to verify: at once, or for a private task once its
    /// client has posted this worker's keys.
    fn begin(&mut self, id: TaskId, role: Role) {
        if let Some(task) = self.task(&id) {
            self.begin_with(id, task, role);
        }
    }

    fn begin_with(&mut self, id: TaskId, task: Task, role: Role) {
        let me = self.address();
        let still_wanted = !matches!(task.phase, Phase::Done(_))
            && match role {
                Role::Executor => task.executors.iter().any(|e| e.provider == me),
                Role::Verifier { .. } | Role::Checker { .. } => task.verifiers.iter().any(|s| s.verifier == me),
                Role::Racer { .. } => true,
            };
        if !still_wanted {
            return;
        }
        if task.spec.private.is_none() {
            return self.launch(id, task.spec, role, None);
        }
        match BlobKeys::open(&id, &task, &self.address(), &self.reader) {
            Ok(keys) => self.launch(id, task.spec, role, Some(keys)),
            Err(KeysError::NotPosted(_)) => {
                tracing::info!(task = %id, "waiting for the client's keys");
                self.work.insert(id, Work { role, stage: WorkStage::AwaitingKeys, with_trace: false });
            }
            Err(error) => self.decline(id, &role, error.to_string()),
        }
    }

    /// Looks again at a task waiting for this worker's keys (they were posted, or a block
    /// passed): starts it once they are there, lets it go once it no longer wants this
    /// worker.
    fn on_keys(&mut self, id: TaskId) {
        // Work that saw its keys when it began is running already.
        if !matches!(self.work.get(&id), Some(Work { stage: WorkStage::AwaitingKeys, .. })) {
            return;
        }
        if let Some(work) = self.work.remove(&id) {
            self.begin(id, work.role);
        }
    }

    /// An executor tells the chain it cannot read the task, which ends it with nobody
    /// slashed; a verifier simply does not report.
    fn decline(&self, id: TaskId, role: &Role, reason: String) {
        tracing::warn!(task = %id, %reason, "cannot read the private task");
        if matches!(role, Role::Executor) {
            let mut cut = reason.len().min(MAX_REASON);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            self.send(TxBody::DeclineTask { task: id, reason: reason[..cut].to_string() });
        }
    }

    /// Runs the task, or replays the segment a checker was given. An executor's start goes
    /// on chain first: it is what the start deadline waits for.
    fn launch(&mut self, id: TaskId, spec: TaskSpec, role: Role, keys: Option<BlobKeys>) {
        match role {
            Role::Checker { segment, tolerance, ref subjects } => {
                let cancel = Arc::new(AtomicBool::new(false));
                let dir = self.config.work_dir.join(id.to_string());
                let subjects = subjects.clone();
                let request =
                    CheckRequest { task: id, spec, dir, segment, tolerance, subjects, keys, cancel: cancel.clone() };
                self.work.insert(id, Work { role, stage: WorkStage::Running { cancel }, with_trace: false });
                verify::spawn(request, self.wallet.clone(), self.runtimes.clone(), self.sender.clone());
            }
            role => {
                if matches!(role, Role::Executor) {
                    self.send(TxBody::StartTask { task: id });
                }
                self.start_run_of(id, spec, role, keys);
            }
        }
    }

    fn start_run_of(&mut self, id: TaskId, spec: TaskSpec, role: Role, keys: Option<BlobKeys>) {
        let (spec_verification, auction) = (spec.verification, matches!(spec.market, Market::Auction { .. }));
        let cancel = Arc::new(AtomicBool::new(false));
        let request = RunRequest {
            task: id,
            spec,
            dir: self.config.work_dir.join(id.to_string()),
            purpose: match &role {
                Role::Verifier { subjects, tolerance } => {
                    Purpose::Compare { subjects: subjects.clone(), tolerance: *tolerance }
                }
                _ => Purpose::Deliver,
            },
            keys,
            cancel: cancel.clone(),
        };
        // The chain takes a trace exactly with proof-of-learning auctions (see `check_claim`).
        let with_trace = matches!(spec_verification, VerificationPolicy::ProofOfLearning { .. }) && auction;
        self.work.insert(id, Work { role, stage: WorkStage::Running { cancel }, with_trace });
        run::spawn(request, self.wallet.clone(), self.runtimes.clone(), self.sender.clone());
    }

    fn on_checked(&mut self, id: TaskId, reports: Vec<VerificationReport>) {
        self.work.remove(&id);
        for report in reports {
            tracing::info!(task = %id, subject = %report.subject, pass = report.pass, ppm = report.distance_ppm, "checked");
            self.send(TxBody::Report { task: id, report });
        }
    }

    fn on_finished(&mut self, id: TaskId, result: Result<Ran, String>) {
        let Some(work) = self.work.remove(&id) else { return };
        let Ran { outcome, sealed } = match result {
            Ok(ran) => ran,
            Err(reason) => {
                tracing::warn!(task = %id, %reason, "the run failed");
                return;
            }
        };
        match work.role {
            Role::Racer { commit_end } if commit_end <= self.height => {
                tracing::info!(task = %id, "finished after the race closed");
            }
            // Their workers report through `on_checked`.
            Role::Verifier { .. } | Role::Checker { .. } => {}
            role => {
                let claim = ResultClaim { output: outcome.output, trace: outcome.trace.filter(|_| work.with_trace) };
                let salt = random_salt();
                let commitment = result_commitment(&id, &self.address(), &claim, &salt);
                self.send(TxBody::CommitResult { task: id, commitment });
                tracing::info!(task = %id, output = %claim.output, ms = outcome.compute_ms, "committed");
                self.work.insert(
                    id,
                    Work { role, stage: WorkStage::Committed { claim, salt, sealed }, with_trace: work.with_trace },
                );
            }
        }
    }
}
