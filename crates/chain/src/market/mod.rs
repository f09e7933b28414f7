//! The market: providers and their device profiles, tasks from submission to award, pools,
//! and the timers that move tasks along when a window closes.
//!
//! A task is an auction task or a pool job; both end with executors holding revealed
//! results, which `verify` then judges and `settle` pays for.

mod auction;
mod execution;
mod keys;
mod pool;

use ogpu_core::spec::{DeviceProfile, Market, Ratio, Requirements, TaskSpec, VerificationPolicy};
use ogpu_core::{Address, Amount, Hash, TaskId};

pub(crate) use auction::{commit_bid, open_auction, reveal_bid};
pub(crate) use execution::{commit_result, reveal_result, start_task};
pub use keys::MAX_REASON;
pub(crate) use keys::{decline_task, post_keys};
pub(crate) use pool::{create_pool, join_pool, leave_pool, open_race};

use crate::error::{Ineligible, TxError};
use crate::exec::Ctx;
use crate::params::{DISPUTE_VERIFIERS, Params, START_REPUTATION};
use crate::receipt::Event;
use crate::settle;
use crate::state::{Outcome, Phase, Provider, State, Task};
use crate::verify;

pub(crate) fn register_provider(ctx: &mut Ctx, who: Address, profile: &DeviceProfile) -> Result<(), TxError> {
    profile.validate()?;
    if ctx.state.providers.contains_key(&who) {
        return Err(TxError::AlreadyRegistered);
    }
    let provider =
        Provider { profile: profile.clone(), stake: Amount::ZERO, reputation: START_REPUTATION, jailed_until: 0 };
    ctx.state.providers.insert(who, provider);
    Ok(())
}

pub(crate) fn update_provider(ctx: &mut Ctx, who: Address, profile: &DeviceProfile) -> Result<(), TxError> {
    profile.validate()?;
    let provider = ctx.state.providers.get_mut(&who).ok_or(TxError::NotAProvider)?;
    provider.profile = profile.clone();
    Ok(())
}

/// Whether `who` may work on a task with these requirements now; the first requirement
/// it fails otherwise.
pub(crate) fn screen(
    state: &State,
    who: &Address,
    requirements: &Requirements,
    task: Option<&Task>,
) -> Result<(), Ineligible> {
    let provider = state.providers.get(who).ok_or(Ineligible::NotRegistered)?;
    if provider.stake < state.params.min_provider_stake {
        return Err(Ineligible::StakeTooLow);
    }
    if provider.jailed_until > state.height {
        return Err(Ineligible::Jailed);
    }
    if task.is_some_and(|t| t.excluded.contains(who) || t.executors.iter().any(|e| e.provider == *who)) {
        return Err(Ineligible::Excluded);
    }
    let wanted = requirements.gpus as usize;
    let gpus: Vec<_> = provider.profile.gpus().collect();
    if gpus.len() < wanted {
        return Err(Ineligible::TooFewGpus);
    }
    let big_enough: Vec<_> = gpus.into_iter().filter(|g| g.memory_mb >= requirements.min_vram_mb).collect();
    if big_enough.len() < wanted {
        return Err(Ineligible::TooLittleVram);
    }
    let allowed = |model: &str| requirements.models.is_empty() || requirements.models.iter().any(|m| m == model);
    if big_enough.iter().filter(|g| allowed(&g.model)).count() < wanted {
        return Err(Ineligible::ModelNotAllowed);
    }
    if provider.reputation < requirements.min_reputation {
        return Err(Ineligible::ReputationTooLow);
    }
    if task.is_some_and(|t| t.spec.private.is_some()) && provider.profile.reader.is_none() {
        return Err(Ineligible::NoReaderKey);
    }
    Ok(())
}

/// How much a task takes from its client: escrow for executors, verifiers and the
/// protocol fee, and the client's trust lock. Unused escrow comes back at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub price_cap: Amount,
    /// For executors and the protocol fee.
    pub escrow: Amount,
    /// For verifiers.
    pub verification: Amount,
    pub client_lock: Amount,
}

impl Reservation {
    pub fn total(&self) -> Option<Amount> {
        self.escrow.checked_add(self.verification)?.checked_add(self.client_lock)
    }
}

/// The reservation for a task at `price_cap` per executor under `params`. Pool jobs
/// (`pool_rate` is the pool's verification rate) reserve for paid replicas instead of
/// replicated executors.
pub fn reservation(params: &Params, spec: &TaskSpec, price_cap: Amount, pooled: bool) -> Option<Reservation> {
    let execution = if pooled {
        let replicas = price_cap.bps(params.replica_fee_bps).checked_mul(u128::from(params.max_paid_replicas))?;
        price_cap.checked_add(replicas)?
    } else {
        price_cap.checked_mul(u128::from(spec.verification.executors()))?
    };
    let verifiers = u128::from(spec.verification.verifiers().max(u8::from(pooled))) + DISPUTE_VERIFIERS as u128;
    let verification = price_cap.bps(params.verifier_fee_bps).checked_mul(verifiers)?;
    let protocol = execution.bps(params.protocol_fee_bps);
    let escrow = execution.checked_add(protocol)?;
    Some(Reservation { price_cap, escrow, verification, client_lock: execution.bps(params.client_lock_bps) })
}

pub(crate) fn submit_task(ctx: &mut Ctx, client: Address, tx: Hash, spec: &TaskSpec) -> Result<(), TxError> {
    spec.validate()?;
    let max = ctx.state.params.unbonding_blocks;
    if spec.deadline_blocks > max {
        return Err(TxError::DeadlineTooLong { max, got: spec.deadline_blocks });
    }
    let id = TaskId(tx);
    let (price_cap, pooled) = match &spec.market {
        Market::Auction { max_price, .. } => (*max_price, false),
        Market::Pool { pool } => {
            let pool = ctx.state.pools.get(pool).ok_or(TxError::UnknownPool(pool.0))?;
            if pool.spec.kind != spec.workload.kind {
                return Err(TxError::PoolKindMismatch { pool: pool.spec.kind, job: spec.workload.kind });
            }
            (pool.spec.price_per_job, true)
        }
    };
    let reserved = reservation(&ctx.state.params, spec, price_cap, pooled).ok_or(TxError::Overflow)?;
    ctx.state.debit(client, reserved.total().ok_or(TxError::Overflow)?)?;
    let mut task = Task {
        client,
        spec: spec.clone(),
        submitted_at: ctx.height(),
        price_cap,
        escrow: reserved.escrow,
        verification_budget: reserved.verification,
        client_lock: reserved.client_lock,
        phase: Phase::Executing,
        executors: Vec::new(),
        excluded: Default::default(),
        rounds: 0,
        verifiers: Vec::new(),
        challenge: None,
        due: None,
        keys: Default::default(),
    };
    ctx.emit(Event::TaskSubmitted { task: id, client, reserved: reserved.total().ok_or(TxError::Overflow)? });
    if pooled {
        open_race(ctx, id, &mut task)
    } else {
        open_auction(ctx, id, &mut task)
    };
    store(ctx, id, task);
    Ok(())
}

pub(crate) fn cancel_task(ctx: &mut Ctx, who: Address, id: TaskId) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    if task.client != who {
        return Err(TxError::NotTheClient);
    }
    // Once a provider sealed a bid it has set its machine aside for the task: cancelling
    // then would cost it for nothing, so it is refused.
    let untouched = match &task.phase {
        Phase::Bidding { bids, .. } => task.executors.is_empty() && bids.is_empty(),
        Phase::Racing { entries, .. } => entries.is_empty(),
        _ => false,
    };
    if !untouched {
        return Err(TxError::NotCancellable { phase: task.phase.name() });
    }
    settle::end_with_refund(ctx, id, &mut task, Outcome::Cancelled)?;
    store(ctx, id, task);
    Ok(())
}

/// Raises an auction task's price cap while it is being auctioned (bids sealed under the
/// old cap stand; reveals and later rounds take the new one), reserving from the client's
/// balance what the higher cap adds to the escrow, the verification budget and the trust
/// lock under the parameters now.
pub(crate) fn top_up_task(ctx: &mut Ctx, who: Address, id: TaskId, max_price: Amount) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    if task.client != who {
        return Err(TxError::NotTheClient);
    }
    let Market::Auction { max_price: stated, .. } = &mut task.spec.market else {
        return Err(TxError::NotAnAuction);
    };
    if !matches!(task.phase, Phase::Bidding { .. }) {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    }
    if max_price <= task.price_cap {
        return Err(TxError::TopUpNotHigher { cap: task.price_cap, got: max_price });
    }
    *stated = max_price;
    let raised = reservation(&ctx.state.params, &task.spec, max_price, false).ok_or(TxError::Overflow)?;
    // Before the award nothing has been paid from the reservation: each part grows to what
    // the new cap reserves (and never shrinks, should the parameters have fallen since).
    let mut added = Amount::ZERO;
    for (held, wanted) in [
        (&mut task.escrow, raised.escrow),
        (&mut task.verification_budget, raised.verification),
        (&mut task.client_lock, raised.client_lock),
    ] {
        let more = wanted.saturating_sub(*held);
        *held = held.checked_add(more).ok_or(TxError::Overflow)?;
        added = added.checked_add(more).ok_or(TxError::Overflow)?;
    }
    ctx.state.debit(who, added)?;
    task.price_cap = max_price;
    ctx.emit(Event::ToppedUp { task: id, price_cap: max_price, added });
    store(ctx, id, task);
    Ok(())
}

pub(crate) fn load(state: &State, id: TaskId) -> Result<Task, TxError> {
    state.tasks.get(&id).cloned().ok_or(TxError::UnknownTask(id.0))
}

/// Writes a task back and moves its timer to its next due height.
pub(crate) fn store(ctx: &mut Ctx, id: TaskId, mut task: Task) {
    let due = next_due(&task);
    ctx.state.schedule(id, &mut task, due);
    ctx.state.tasks.insert(id, task);
}

/// The next height at which something about `task` times out.
fn next_due(task: &Task) -> Option<u64> {
    let executor_due = task.executors.iter().filter_map(|e| e.deadline()).min();
    let phase_due = match &task.phase {
        Phase::Bidding { reveal_end, .. } => Some(*reveal_end),
        Phase::Executing => None,
        Phase::Revealing { reveal_end } => Some(*reveal_end),
        Phase::Racing { reveal_end, .. } => Some(*reveal_end),
        Phase::Verifying { report_end, .. } => return Some(*report_end),
        Phase::Challengeable { challenge_end } => return Some(*challenge_end),
        Phase::Done(_) => return None,
    };
    [executor_due, phase_due].into_iter().flatten().min()
}

/// The policy a task's results are judged by; a pool job gets a spot check at its pool's
/// verification rate.
pub(crate) fn policy(state: &State, task: &Task) -> VerificationPolicy {
    match &task.spec.market {
        Market::Auction { .. } => task.spec.verification,
        Market::Pool { pool } => match state.pools.get(pool) {
            Some(pool) if pool.spec.verification_rate.0 > 0 => {
                VerificationPolicy::SpotCheck { p: pool.spec.verification_rate, tolerance: Ratio(0) }
            }
            _ => VerificationPolicy::None,
        },
    }
}

/// Runs every task step that falls due at this height.
pub(crate) fn run_timers(ctx: &mut Ctx) -> Result<(), TxError> {
    let height = ctx.height();
    while let Some(&(due, id)) = ctx.state.timers.get_min() {
        if due > height {
            break;
        }
        ctx.state.timers.remove(&(due, id));
        let mut task = load(ctx.state, id)?;
        task.due = None;
        let snapshot = ctx.state.clone();
        let events = ctx.events.len();
        if let Err(error) = on_due(ctx, id, &mut task) {
            // A step that cannot complete must not halt the chain: undo it and end the
            // task with a refund instead.
            *ctx.state = snapshot;
            ctx.events.truncate(events);
            task = load(ctx.state, id)?;
            task.due = None;
            settle::end_with_refund(ctx, id, &mut task, Outcome::Failed(format!("internal error: {error}")))?;
        }
        store(ctx, id, task);
    }
    Ok(())
}

fn on_due(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<(), TxError> {
    if keys::drop_keyless(ctx, id, task)? {
        return Ok(());
    }
    let height = ctx.height();
    match task.phase.clone() {
        Phase::Bidding { reveal_end, .. } => {
            execution::expire_executors(ctx, id, task, false)?;
            if reveal_end <= height && matches!(task.phase, Phase::Bidding { .. }) {
                auction::award(ctx, id, task)?;
            }
            Ok(())
        }
        Phase::Executing => {
            if execution::expire_executors(ctx, id, task, false)? {
                open_auction(ctx, id, task);
            }
            Ok(())
        }
        Phase::Revealing { reveal_end } if reveal_end <= height => execution::close_reveals(ctx, id, task),
        Phase::Racing { reveal_end, .. } if reveal_end <= height => pool::close_race(ctx, id, task),
        Phase::Verifying { report_end, .. } if report_end <= height => verify::tally(ctx, id, task),
        Phase::Challengeable { challenge_end } if challenge_end <= height => settle::complete(ctx, id, task),
        _ => Ok(()),
    }
}
