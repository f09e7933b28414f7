//! Private tasks: the client hands each worker the keys of the task's sealed blobs, and an
//! executor that cannot read them gives the task back.
//!
//! The chain cannot tell a good envelope from a bad one (only the reader's secret opens
//! it), so it never slashes over keys: a client that posts none in time, or keys that do
//! not open, ends the task with a refund and the reason, nobody paid and nobody slashed.

use ogpu_core::sealed::Envelope;
use ogpu_core::{Address, TaskId};

use crate::error::{Ineligible, TxError};
use crate::exec::Ctx;
use crate::market::{load, store};
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
    if !worker {
        return Err(TxError::NotAWorker);
    }
    if ctx.state.providers.get(&to).and_then(|p| p.profile.reader).is_none() {
        return Err(TxError::Ineligible(Ineligible::NoReaderKey));
    }
    let expected = 1 + task.spec.workload.inputs.len();
    if keys.len() != expected {
        return Err(TxError::KeyCount { expected, got: keys.len() });
    }
    if task.keys.contains_key(&to) {
        return Err(TxError::KeysAlreadyPosted);
    }
    task.keys.insert(to, keys.to_vec());
    ctx.emit(Event::KeysPosted { task: id, to });
    store(ctx, id, task);
    Ok(())
}

/// An executor of a private task could not read it: the task ends with its reason.
pub(crate) fn decline_task(ctx: &mut Ctx, who: Address, id: TaskId, reason: &str) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    if task.spec.private.is_none() {
        return Err(TxError::NotPrivate);
    }
    if reason.len() > MAX_REASON {
        return Err(TxError::ReasonTooLong { max: MAX_REASON });
    }
    let executor = task.executors.iter().find(|e| e.provider == who).ok_or(TxError::NotAnExecutor)?;
    // Once it committed a result it has read the task: nothing is left to decline.
    if !matches!(executor.stage, Stage::Awarded | Stage::Started) || matches!(task.phase, Phase::Done(_)) {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    }
    let outcome = Outcome::Failed(format!("executor {who} could not read the private task: {reason}"));
    settle::end_with_refund(ctx, id, &mut task, outcome)?;
    store(ctx, id, task);
    Ok(())
}

/// Ends a private task whose client let an executor's start deadline pass without posting
/// its keys, instead of slashing the executor for not starting. Returns whether it did.
pub(crate) fn end_if_undelivered(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<bool, TxError> {
    if task.spec.private.is_none() {
        return Ok(false);
    }
    let height = ctx.height();
    let keyless = task
        .executors
        .iter()
        .find(|e| e.stage == Stage::Awarded && e.stage_due <= height && !task.keys.contains_key(&e.provider));
    let Some(executor) = keyless else { return Ok(false) };
    let reason = format!("the client posted no keys to executor {} before its start deadline", executor.provider);
    settle::end_with_refund(ctx, id, task, Outcome::Failed(reason))?;
    Ok(true)
}
