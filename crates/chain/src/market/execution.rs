//! Awarded executors: start, commit a sealed result, reveal it once every executor has
//! committed (so nobody can copy another's answer), and the deadlines that slash those who
//! fall behind.

use ogpu_core::spec::{Market, VerificationPolicy};
use ogpu_core::tx::{ResultClaim, StakeRole, result_commitment};
use ogpu_core::{Address, BlobHash, Hash, TaskId};

use crate::error::TxError;
use crate::exec::Ctx;
use crate::market::{load, open_auction, pool, store};
use crate::receipt::SlashReason;
use crate::settle;
use crate::state::{Phase, Stage, Task};
use crate::{staking, verify};

/// The sender's place among the executors of a task that is still running.
fn executor_index(task: &Task, who: &Address) -> Result<usize, TxError> {
    if let Phase::Done(_) = task.phase {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    }
    task.executors.iter().position(|e| e.provider == *who).ok_or(TxError::NotAnExecutor)
}

pub(crate) fn start_task(ctx: &mut Ctx, who: Address, id: TaskId) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    let deadline = ctx.height() + task.spec.deadline_blocks;
    let index = executor_index(&task, &who)?;
    let executor = &mut task.executors[index];
    if executor.stage != Stage::Awarded {
        return Err(TxError::AlreadyStarted);
    }
    executor.stage = Stage::Started;
    executor.stage_due = deadline;
    store(ctx, id, task);
    Ok(())
}

pub(crate) fn commit_result(ctx: &mut Ctx, who: Address, id: TaskId, commitment: Hash) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    if matches!(task.phase, Phase::Racing { .. }) {
        return pool::commit_to_race(ctx, who, id, task, commitment);
    }
    let index = executor_index(&task, &who)?;
    match task.executors[index].stage {
        Stage::Awarded => return Err(TxError::NotStarted),
        Stage::Committed(_) | Stage::Revealed(_) => return Err(TxError::DoubleCommit),
        Stage::Started => task.executors[index].stage = Stage::Committed(commitment),
    }
    let slots = usize::from(task.spec.verification.executors());
    let all_committed = task.executors.len() == slots
        && task.executors.iter().all(|e| matches!(e.stage, Stage::Committed(_) | Stage::Revealed(_)));
    if all_committed && matches!(task.phase, Phase::Executing) {
        task.phase = Phase::Revealing { reveal_end: ctx.height() + ctx.state.params.result_reveal_blocks };
    }
    store(ctx, id, task);
    Ok(())
}

/// A claim must carry a training trace exactly when its task is verified by proof of
/// learning, with as many checkpoints as the task's declared training makes (a
/// container's; a train config's count is checked by its verifiers).
pub(crate) fn check_claim(task: &Task, claim: &ResultClaim) -> Result<(), TxError> {
    let wants_trace = matches!(task.spec.verification, VerificationPolicy::ProofOfLearning { .. })
        && matches!(task.spec.market, Market::Auction { .. });
    let declared = task.spec.workload.training.map(|training| training.checkpoints());
    match (&claim.trace, wants_trace) {
        (None, true) => Err(TxError::InvalidClaim("proof of learning needs a checkpoint trace")),
        (Some(trace), true) if trace.checkpoints < 2 => {
            Err(TxError::InvalidClaim("a trace needs at least 2 checkpoints"))
        }
        (Some(trace), true) if declared.is_some_and(|count| count != u64::from(trace.checkpoints)) => {
            Err(TxError::InvalidClaim("the trace's checkpoints are not those the task's training makes"))
        }
        (Some(_), false) => Err(TxError::InvalidClaim("only proof-of-learning tasks take a trace")),
        _ => Ok(()),
    }
}

/// A private task's result must be revealed with the index of its sealed copy, and a
/// public one's without. (The chain cannot open it: a copy that does not hold the result
/// fails its executor where a proof-of-learning verifier reads it; under other policies
/// the client finds out when it opens the result, and tries another executor's copy.)
fn check_sealing(task: &Task, sealed: Option<BlobHash>) -> Result<(), TxError> {
    match (task.spec.private.is_some(), sealed.is_some()) {
        (true, false) => Err(TxError::InvalidClaim("a private task's result is revealed with its sealed index")),
        (false, true) => Err(TxError::InvalidClaim("only a private task's result is sealed")),
        _ => Ok(()),
    }
}

pub(crate) fn reveal_result(
    ctx: &mut Ctx,
    who: Address,
    id: TaskId,
    claim: &ResultClaim,
    salt: &Hash,
    sealed: Option<BlobHash>,
) -> Result<(), TxError> {
    let task = load(ctx.state, id)?;
    check_claim(&task, claim)?;
    check_sealing(&task, sealed)?;
    if matches!(task.phase, Phase::Racing { .. }) {
        return pool::reveal_in_race(ctx, who, id, task, claim, salt);
    }
    let mut task = task;
    let index = executor_index(&task, &who)?;
    if !matches!(task.phase, Phase::Revealing { .. }) {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    }
    let commitment = match task.executors[index].stage {
        Stage::Committed(commitment) => commitment,
        Stage::Revealed(_) => return Err(TxError::AlreadyRevealed),
        Stage::Awarded | Stage::Started => return Err(TxError::RevealWithoutCommit),
    };
    if result_commitment(&id, &who, claim, salt) != commitment {
        return Err(TxError::RevealMismatch);
    }
    task.executors[index].stage = Stage::Revealed(*claim);
    task.executors[index].sealed = sealed;
    if task.executors.iter().all(|e| matches!(e.stage, Stage::Revealed(_))) {
        verify::evaluate(ctx, id, &mut task)?;
    }
    store(ctx, id, task);
    Ok(())
}

/// The reveal window has closed: those who did not reveal are slashed and removed. The
/// others' results are public now, so no newcomer may join them (it could copy): if the
/// revealed results still satisfy the policy they are judged as they are, otherwise the
/// revealers are released unpaid and the task is auctioned afresh.
pub(crate) fn close_reveals(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<(), TxError> {
    expire_executors(ctx, id, task, true)?;
    let needed = match task.spec.verification {
        VerificationPolicy::Replicate { quorum, .. } => usize::from(quorum),
        _ => 1,
    };
    if task.executors.len() >= needed {
        return verify::evaluate(ctx, id, task);
    }
    for executor in std::mem::take(&mut task.executors) {
        task.excluded.insert(executor.provider);
    }
    open_auction(ctx, id, task);
    Ok(())
}

/// Slashes and removes the executors whose deadline has passed: those who never started
/// (a small slash), those who never committed, and, when `reveal_closed`, those who
/// committed but did not reveal in time. Returns whether any slot fell vacant.
pub(crate) fn expire_executors(
    ctx: &mut Ctx,
    id: TaskId,
    task: &mut Task,
    reveal_closed: bool,
) -> Result<bool, TxError> {
    let height = ctx.height();
    let late: Vec<(Address, SlashReason)> = task
        .executors
        .iter()
        .filter_map(|e| match e.stage {
            Stage::Awarded if e.stage_due <= height => Some((e.provider, SlashReason::StartTimeout)),
            Stage::Started if e.stage_due <= height => Some((e.provider, SlashReason::MissedDeadline)),
            Stage::Committed(_) if reveal_closed => Some((e.provider, SlashReason::MissedDeadline)),
            _ => None,
        })
        .collect();
    for (provider, reason) in &late {
        let bps = match reason {
            SlashReason::StartTimeout => ctx.state.params.start_slash_bps,
            _ => ctx.state.params.fault_slash_bps,
        };
        let taken = staking::slash(ctx, *provider, StakeRole::Provider, bps, *reason)?;
        settle::compensate_client(ctx, id, task, taken)?;
        settle::remove_executor(ctx, task, provider, false);
    }
    Ok(!late.is_empty())
}
