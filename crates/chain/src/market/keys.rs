//! Private tasks: the client hands each worker the keys of the task's sealed blobs, and an
//! executor that cannot read them gives the task back. The client keeps its own copy of
//! the keys here too, wrapped to its own reader key, so that any machine holding its
//! account key can hand them on and read the result.
//!
//! The chain cannot tell a good envelope from a bad one (only the reader's secret opens
//! it), so it never slashes over keys: an executor always has a full start window after
//! its keys arrive; one that gets none in time, or keys that do not open, leaves the task
//! unslashed. While no other executor has committed a result, that ends the task with a
//! refund and the reason; once one has, only the executor without keys leaves, and its
//! slot is auctioned again, so a client cannot void work already done.

use ogpu_core::sealed::Envelope;
use ogpu_core::{Address, TaskId};

use crate::error::{Ineligible, TxError};
use crate::exec::Ctx;
use crate::market::{load, open_auction, store};
use crate::receipt::Event;
use crate::settle;
use crate::state::{Outcome, Phase, Stage, Task};

/// The longest reason an executor may give for declining.
pub const MAX_REASON: usize = 256;

pub(crate) fn post_keys(
    ctx: &mut Ctx,
    who: Address,
    id: TaskId,
    to: Address,
    keys: &[Envelope],
) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    if task.client != who {
        return Err(TxError::NotTheClient);
    }
    if task.spec.private.is_none() {
        return Err(TxError::NotPrivate);
    }
    if let Phase::Done(_) = task.phase {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    }
    let worker = task.executors.iter().any(|e| e.provider == to) || task.verifiers.iter().any(|s| s.verifier == to);
    if !worker && to != task.client {
        return Err(TxError::NotAWorker);
    }
    if worker && ctx.state.providers.get(&to).and_then(|p| p.profile.reader).is_none() {
        return Err(TxError::Ineligible(Ineligible::NoReaderKey));
    }
    let expected = task.spec.workload.blobs().count();
    if keys.len() != expected {
        return Err(TxError::KeyCount { expected, got: keys.len() });
    }
    if task.keys.contains_key(&to) {
        return Err(TxError::KeysAlreadyPosted);
    }
    // Keys posted late leave the executor its whole start window from now: posting them
    // in the block its deadline falls in must not get it slashed for not starting.
    let start_by = ctx.height() + ctx.state.params.start_timeout_blocks;
    if let Some(executor) = task.executors.iter_mut().find(|e| e.provider == to && e.stage == Stage::Awarded) {
        executor.stage_due = executor.stage_due.max(start_by);
    }
    task.keys.insert(to, keys.to_vec());
    ctx.emit(Event::KeysPosted { task: id, to });
    store(ctx, id, task);
    Ok(())
}

/// An executor of a private task could not read it. Declining after its start costs it
/// reputation, as leaving any task does, so that a decline is no cheaper way out of a
/// deadline than missing it.
pub(crate) fn decline_task(ctx: &mut Ctx, who: Address, id: TaskId, reason: &str) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    if task.spec.private.is_none() {
        return Err(TxError::NotPrivate);
    }
    if reason.len() > MAX_REASON {
        return Err(TxError::ReasonTooLong { max: MAX_REASON });
    }
    if let Phase::Done(_) = task.phase {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    }
    let executor = task.executors.iter().find(|e| e.provider == who).ok_or(TxError::NotAnExecutor)?;
    let started = match executor.stage {
        Stage::Awarded => false,
        Stage::Started => true,
        // Once it committed a result it has read the task: nothing is left to decline.
        Stage::Committed(_) | Stage::Revealed(_) => return Err(TxError::AlreadyCommitted),
    };
    if started {
        settle::adjust_reputation(ctx, &who, -50);
    }
    let why = format!("executor {who} could not read the private task: {reason}");
    leave(ctx, id, &mut task, who, why)?;
    store(ctx, id, task);
    Ok(())
}

/// Takes an executor whose start deadline passed without its keys off a private task,
/// instead of slashing it for not starting. Returns whether it did.
pub(crate) fn drop_keyless(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<bool, TxError> {
    if task.spec.private.is_none() {
        return Ok(false);
    }
    let height = ctx.height();
    let keyless = task
        .executors
        .iter()
        .find(|e| e.stage == Stage::Awarded && e.stage_due <= height && !task.keys.contains_key(&e.provider))
        .map(|e| e.provider);
    let Some(executor) = keyless else { return Ok(false) };
    let why = format!("the client posted no keys to executor {executor} before its start deadline");
    leave(ctx, id, task, executor, why)?;
    Ok(true)
}

/// `executor` leaves a private task it could not read, unslashed: the task ends with a
/// refund while nobody else has committed a result, and otherwise goes on without it.
fn leave(ctx: &mut Ctx, id: TaskId, task: &mut Task, executor: Address, why: String) -> Result<(), TxError> {
    let others_committed = task
        .executors
        .iter()
        .any(|e| e.provider != executor && matches!(e.stage, Stage::Committed(_) | Stage::Revealed(_)));
    if !others_committed {
        return settle::end_with_refund(ctx, id, task, Outcome::Failed(why));
    }
    task.executors.retain(|e| e.provider != executor);
    task.excluded.insert(executor);
    if matches!(task.phase, Phase::Executing) {
        open_auction(ctx, id, task);
    }
    Ok(())
}
