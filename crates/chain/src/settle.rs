//! Where a task's money goes: payouts from escrow, compensation to the client from
//! slashed stake, refunds, challenge bonds, and the end of a task. Every function here
//! moves money between places the state already counts, so the total is conserved.

use ogpu_core::spec::Market;
use ogpu_core::tx::StakeRole;
use ogpu_core::{Address, Amount, TaskId};

use crate::error::TxError;
use crate::exec::Ctx;
use crate::params::MAX_REPUTATION;
use crate::receipt::{Event, PayReason, SlashReason};
use crate::staking;
use crate::state::{Outcome, Phase, Stage, Task};

/// Pays up to `amount` out of `pot` (a task's escrow or its verification budget);
/// returns what was paid.
pub(crate) fn pay(
    ctx: &mut Ctx,
    id: TaskId,
    pot: &mut Amount,
    to: Address,
    amount: Amount,
    why: PayReason,
) -> Result<Amount, TxError> {
    let paid = amount.min(*pot);
    *pot = pot.checked_sub(paid).ok_or(TxError::Overflow)?;
    ctx.state.credit(to, paid)?;
    if !paid.is_zero() {
        ctx.emit(Event::Paid { task: id, to, amount: paid, why });
    }
    Ok(paid)
}

/// Gives the client what was slashed from a failing executor, up to the task's price; the
/// rest is burned so that slashing never profits anyone who could arrange it.
pub(crate) fn compensate_client(ctx: &mut Ctx, id: TaskId, task: &Task, slashed: Amount) -> Result<(), TxError> {
    let compensation = slashed.min(task.price_cap);
    ctx.state.credit(task.client, compensation)?;
    ctx.state.burn(slashed.checked_sub(compensation).ok_or(TxError::Overflow)?)?;
    if !compensation.is_zero() {
        ctx.emit(Event::Paid { task: id, to: task.client, amount: compensation, why: PayReason::Compensation });
    }
    Ok(())
}

pub(crate) fn adjust_reputation(ctx: &mut Ctx, who: &Address, delta: i32) {
    if let Some(provider) = ctx.state.providers.get_mut(who) {
        let moved = (i32::from(provider.reputation) + delta).clamp(0, i32::from(MAX_REPUTATION));
        provider.reputation = moved as u16;
    }
}

/// Takes an executor off the task and bars it from the task for good.
pub(crate) fn remove_executor(ctx: &mut Ctx, task: &mut Task, provider: &Address, cheated: bool) {
    task.executors.retain(|e| e.provider != *provider);
    task.excluded.insert(*provider);
    adjust_reputation(ctx, provider, if cheated { -100 } else { -50 });
    if cheated {
        staking::jail(ctx, *provider, StakeRole::Provider);
    }
}

/// An executor delivered a wrong result: slash its trust lock (and its pool stake, for a
/// pool job), compensate the client, jail it and take it off the task.
pub(crate) fn fault(ctx: &mut Ctx, id: TaskId, task: &mut Task, provider: Address) -> Result<(), TxError> {
    let bps = ctx.state.params.fault_slash_bps;
    let mut taken = staking::slash(ctx, provider, StakeRole::Provider, bps, SlashReason::WrongResult)?;
    if let Market::Pool { pool } = task.spec.market
        && let Some(stake) = ctx.state.pools.get_mut(&pool).and_then(|p| p.subscribers.get_mut(&provider))
    {
        let share = stake.bps(bps);
        *stake = stake.checked_sub(share).ok_or(TxError::Overflow)?;
        taken = taken.checked_add(share).ok_or(TxError::Overflow)?;
    }
    compensate_client(ctx, id, task, taken)?;
    remove_executor(ctx, task, &provider, true);
    Ok(())
}

/// Settles a challenge: an upheld challenge gets its bond back; a frivolous one forfeits
/// it to the executors it held up.
pub(crate) fn resolve_challenge(ctx: &mut Ctx, id: TaskId, task: &mut Task, upheld: bool) -> Result<(), TxError> {
    let Some(challenge) = task.challenge.take() else {
        return Ok(());
    };
    let executors: Vec<Address> = task.executors.iter().map(|e| e.provider).collect();
    if upheld || executors.is_empty() {
        ctx.state.credit(challenge.challenger, challenge.bond)?;
        return Ok(());
    }
    let share = challenge.bond.checked_mul_div(1, executors.len() as u128).ok_or(TxError::Overflow)?;
    let mut left = challenge.bond;
    for (i, executor) in executors.iter().enumerate() {
        let amount = if i + 1 == executors.len() { left } else { share };
        left = left.checked_sub(amount).ok_or(TxError::Overflow)?;
        ctx.state.credit(*executor, amount)?;
        ctx.emit(Event::Paid { task: id, to: *executor, amount, why: PayReason::ChallengeBond });
    }
    Ok(())
}

/// Ends a task without a result: everything reserved goes back to the client, and a
/// pending challenge bond to its challenger.
pub(crate) fn end_with_refund(ctx: &mut Ctx, id: TaskId, task: &mut Task, outcome: Outcome) -> Result<(), TxError> {
    resolve_challenge(ctx, id, task, true)?;
    let refund = task
        .escrow
        .checked_add(task.verification_budget)
        .and_then(|r| r.checked_add(task.client_lock))
        .ok_or(TxError::Overflow)?;
    task.escrow = Amount::ZERO;
    task.verification_budget = Amount::ZERO;
    task.client_lock = Amount::ZERO;
    ctx.state.credit(task.client, refund)?;
    ctx.emit(Event::Refunded { task: id, client: task.client, amount: refund });
    task.verifiers.clear();
    task.phase = Phase::Done(outcome.clone());
    ctx.emit(Event::TaskEnded { task: id, outcome });
    Ok(())
}

/// What each executor earns on success: its awarded price in an auction; in a pool, the
/// job price for the winner (the earliest commit) and the replica fee for matching replicas.
fn earnings(ctx: &Ctx, task: &Task) -> Vec<(Address, Amount, PayReason)> {
    match task.spec.market {
        Market::Auction { .. } => task.executors.iter().map(|e| (e.provider, e.price, PayReason::Execution)).collect(),
        Market::Pool { .. } => {
            let replica_fee = task.price_cap.bps(ctx.state.params.replica_fee_bps);
            let winner_claim = task.executors.first().map(|e| e.stage.clone());
            task.executors
                .iter()
                .enumerate()
                .filter(|(_, e)| Some(&e.stage) == winner_claim.as_ref())
                .take(1 + usize::from(ctx.state.params.max_paid_replicas))
                .map(|(i, e)| match i {
                    0 => (e.provider, task.price_cap, PayReason::Execution),
                    _ => (e.provider, replica_fee, PayReason::Replica),
                })
                .collect()
        }
    }
}

/// Pays for a verified result and ends the task.
pub(crate) fn complete(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<(), TxError> {
    let mut paid = Amount::ZERO;
    for (provider, amount, why) in earnings(ctx, task) {
        let got = pay(ctx, id, &mut task.escrow, provider, amount, why)?;
        paid = paid.checked_add(got).ok_or(TxError::Overflow)?;
        adjust_reputation(ctx, &provider, 10);
    }
    let protocol_fee = paid.bps(ctx.state.params.protocol_fee_bps).min(task.escrow);
    task.escrow = task.escrow.checked_sub(protocol_fee).ok_or(TxError::Overflow)?;
    ctx.state.reward_pool = ctx.state.reward_pool.checked_add(protocol_fee).ok_or(TxError::Overflow)?;
    let output = match task.executors.first().map(|e| &e.stage) {
        Some(Stage::Revealed(claim)) => claim.output,
        _ => return end_with_refund(ctx, id, task, Outcome::Failed("no result to settle".into())),
    };
    end_with_refund(ctx, id, task, Outcome::Completed { output })
}
