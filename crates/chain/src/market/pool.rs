//! Pools: standing services that providers subscribe to with stake. A job sent to a pool
//! is raced for: subscribers commit a result bound to their own address, then reveal it
//! once the commit window has closed. The earliest valid commit wins; later commits that
//! match it are replicas and earn a small fee.

use ogpu_core::spec::{Market, PoolSpec};
use ogpu_core::tx::{ResultClaim, StakeRole, result_commitment};
use ogpu_core::{Address, Amount, Hash, PoolId, TaskId};

use crate::error::{Ineligible, TxError};
use crate::exec::Ctx;
use crate::market::store;
use crate::receipt::Event;
use crate::state::{Executor, Outcome, Phase, Pool, RaceEntry, Stage, Task};
use crate::{settle, staking, verify};

pub(crate) fn create_pool(ctx: &mut Ctx, owner: Address, tx: Hash, spec: &PoolSpec) -> Result<(), TxError> {
    spec.validate()?;
    let id = PoolId(tx);
    ctx.state.pools.insert(id, Pool { owner, spec: spec.clone(), subscribers: Default::default() });
    ctx.emit(Event::PoolCreated { pool: id });
    Ok(())
}

pub(crate) fn join_pool(ctx: &mut Ctx, who: Address, id: PoolId, stake: Amount) -> Result<(), TxError> {
    let provider = ctx.state.providers.get(&who).ok_or(TxError::NotAProvider)?;
    if provider.stake < ctx.state.params.min_provider_stake {
        return Err(TxError::Ineligible(Ineligible::StakeTooLow));
    }
    if provider.jailed_until > ctx.height() {
        return Err(TxError::Ineligible(Ineligible::Jailed));
    }
    let pool = ctx.state.pools.get(&id).ok_or(TxError::UnknownPool(id.0))?;
    if pool.subscribers.contains_key(&who) {
        return Err(TxError::AlreadySubscribed);
    }
    if stake < pool.spec.min_stake {
        return Err(TxError::StakeBelowMinimum { min: pool.spec.min_stake, would_be: stake });
    }
    ctx.state.debit(who, stake)?;
    if let Some(pool) = ctx.state.pools.get_mut(&id) {
        pool.subscribers.insert(who, stake);
    }
    Ok(())
}

/// Unsubscribes; the pool stake unbonds and stays slashable meanwhile.
pub(crate) fn leave_pool(ctx: &mut Ctx, who: Address, id: PoolId) -> Result<(), TxError> {
    let pool = ctx.state.pools.get_mut(&id).ok_or(TxError::UnknownPool(id.0))?;
    let stake = pool.subscribers.remove(&who).ok_or(TxError::NotSubscribed)?;
    if !stake.is_zero() {
        staking::start_unbonding(ctx, who, StakeRole::Provider, stake)?;
    }
    Ok(())
}

fn pool_of(task: &Task) -> Option<PoolId> {
    match task.spec.market {
        Market::Pool { pool } => Some(pool),
        Market::Auction { .. } => None,
    }
}

/// Opens a new race for a pool job, or ends it when it has used up its rounds.
pub(crate) fn open_race(ctx: &mut Ctx, id: TaskId, task: &mut Task) {
    task.rounds += 1;
    if task.rounds > ctx.state.params.max_rounds {
        let reason = format!("no subscriber delivered a valid result in {} races", ctx.state.params.max_rounds);
        let _ = settle::end_with_refund(ctx, id, task, Outcome::Failed(reason));
        return;
    }
    let commit_end = ctx.height() + ctx.state.params.pool_commit_blocks;
    let reveal_end = commit_end + ctx.state.params.result_reveal_blocks;
    task.phase = Phase::Racing { commit_end, reveal_end, entries: Vec::new() };
    ctx.emit(Event::RaceOpened { task: id, round: task.rounds, commit_end });
}

pub(crate) fn commit_to_race(
    ctx: &mut Ctx,
    who: Address,
    id: TaskId,
    mut task: Task,
    commitment: Hash,
) -> Result<(), TxError> {
    let height = ctx.height();
    let pool_id = pool_of(&task).ok_or(TxError::WrongPhase { phase: task.phase.name() })?;
    let pool = ctx.state.pools.get(&pool_id).ok_or(TxError::UnknownPool(pool_id.0))?;
    if pool.subscribers.get(&who).is_none_or(|stake| *stake < pool.spec.min_stake) {
        return Err(TxError::NotSubscribed);
    }
    if ctx.state.providers.get(&who).is_some_and(|p| p.jailed_until > height) {
        return Err(TxError::Ineligible(Ineligible::Jailed));
    }
    if task.excluded.contains(&who) {
        return Err(TxError::Ineligible(Ineligible::Excluded));
    }
    let Phase::Racing { commit_end, entries, .. } = &mut task.phase else { unreachable!("checked by the caller") };
    if height > *commit_end {
        let opens = commit_end.saturating_sub(ctx.state.params.pool_commit_blocks);
        return Err(TxError::OutsideWindow { opens, closes: *commit_end, height });
    }
    if entries.iter().any(|e| e.provider == who) {
        return Err(TxError::DoubleCommit);
    }
    entries.push(RaceEntry { provider: who, commitment, claim: None });
    store(ctx, id, task);
    Ok(())
}

pub(crate) fn reveal_in_race(
    ctx: &mut Ctx,
    who: Address,
    id: TaskId,
    mut task: Task,
    claim: &ResultClaim,
    salt: &Hash,
) -> Result<(), TxError> {
    let height = ctx.height();
    let Phase::Racing { commit_end, reveal_end, entries } = &mut task.phase else {
        unreachable!("checked by the caller")
    };
    if height <= *commit_end || height > *reveal_end {
        return Err(TxError::OutsideWindow { opens: *commit_end + 1, closes: *reveal_end, height });
    }
    let entry = entries.iter_mut().find(|e| e.provider == who).ok_or(TxError::RevealWithoutCommit)?;
    if entry.claim.is_some() {
        return Err(TxError::AlreadyRevealed);
    }
    if result_commitment(&id, &who, claim, salt) != entry.commitment {
        return Err(TxError::RevealMismatch);
    }
    entry.claim = Some(*claim);
    store(ctx, id, task);
    Ok(())
}

/// Ends a race: the revealed entries become the job's executors in commit order (the
/// first is the winner, the rest replicas), and their results go to verification.
pub(crate) fn close_race(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<(), TxError> {
    let Phase::Racing { entries, .. } = &task.phase else {
        return Ok(());
    };
    task.executors = entries
        .iter()
        .filter_map(|entry| {
            let claim = entry.claim?;
            Some(Executor {
                provider: entry.provider,
                price: Amount::ZERO,
                stage: Stage::Revealed(claim),
                stage_due: 0,
                sealed: None,
            })
        })
        .collect();
    if task.executors.is_empty() {
        open_race(ctx, id, task);
        return Ok(());
    }
    verify::evaluate(ctx, id, task)
}
