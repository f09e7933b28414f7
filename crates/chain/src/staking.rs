//! Validator and provider stake: bonding, unbonding (still slashable), withdrawal,
//! slashing, jailing, equivocation evidence, and the epoch change that turns staking state
//! into the next validator set.

use ogpu_core::tx::StakeRole;
use ogpu_core::vote::Evidence;
use ogpu_core::{Address, Amount, PublicKey};

use crate::error::TxError;
use crate::exec::Ctx;
use crate::receipt::{Event, SlashReason};
use crate::state::{State, Unbonding, Validator};

fn bonded(state: &State, who: &Address, role: StakeRole) -> Option<Amount> {
    match role {
        StakeRole::Validator => state.validators.get(who).map(|v| v.stake),
        StakeRole::Provider => state.providers.get(who).map(|p| p.stake),
    }
}

/// Sets the bonded stake of an existing validator or provider record.
fn set_bonded(state: &mut State, who: &Address, role: StakeRole, stake: Amount) {
    match role {
        StakeRole::Validator => {
            if let Some(validator) = state.validators.get_mut(who) {
                validator.stake = stake;
            }
        }
        StakeRole::Provider => {
            if let Some(provider) = state.providers.get_mut(who) {
                provider.stake = stake;
            }
        }
    }
}

fn minimum(state: &State, role: StakeRole) -> Amount {
    match role {
        StakeRole::Validator => state.params.min_validator_stake,
        StakeRole::Provider => state.params.min_provider_stake,
    }
}

pub(crate) fn stake(
    ctx: &mut Ctx,
    who: Address,
    key: PublicKey,
    role: StakeRole,
    amount: Amount,
) -> Result<(), TxError> {
    if amount.is_zero() {
        return Err(TxError::ZeroAmount);
    }
    if role == StakeRole::Provider && !ctx.state.providers.contains_key(&who) {
        return Err(TxError::NotAProvider);
    }
    let current = bonded(ctx.state, &who, role).unwrap_or_default();
    let would_be = current.checked_add(amount).ok_or(TxError::Overflow)?;
    let min = minimum(ctx.state, role);
    if would_be < min {
        return Err(TxError::StakeBelowMinimum { min, would_be });
    }
    ctx.state.debit(who, amount)?;
    if role == StakeRole::Validator && !ctx.state.validators.contains_key(&who) {
        ctx.state.validators.insert(who, Validator { key, stake: Amount::ZERO, jailed_until: 0 });
    }
    set_bonded(ctx.state, &who, role, would_be);
    Ok(())
}

pub(crate) fn unstake(ctx: &mut Ctx, who: Address, role: StakeRole, amount: Amount) -> Result<(), TxError> {
    if amount.is_zero() {
        return Err(TxError::ZeroAmount);
    }
    let have = bonded(ctx.state, &who, role).unwrap_or_default();
    let left = have.checked_sub(amount).ok_or(TxError::NotEnoughStake { have, want: amount })?;
    let min = minimum(ctx.state, role);
    if !left.is_zero() && left < min {
        return Err(TxError::StakeBelowMinimum { min, would_be: left });
    }
    // The record stays even at zero stake, so a jail term outlives unstaking and restaking.
    set_bonded(ctx.state, &who, role, left);
    start_unbonding(ctx, who, role, amount)
}

pub(crate) fn start_unbonding(ctx: &mut Ctx, who: Address, role: StakeRole, amount: Amount) -> Result<(), TxError> {
    let release_height = ctx.height() + ctx.state.params.unbonding_blocks;
    let seq = ctx.state.next_unbonding;
    ctx.state.next_unbonding += 1;
    ctx.state.unbonding.insert((who, seq), Unbonding { role, amount, release_height });
    Ok(())
}

pub(crate) fn withdraw(ctx: &mut Ctx, who: Address) -> Result<(), TxError> {
    let height = ctx.height();
    let mine: Vec<_> = ctx
        .state
        .unbonding
        .range((who, 0)..=(who, u64::MAX))
        .map(|(key, entry)| (*key, entry.amount, entry.release_height))
        .collect();
    let (ready, waiting): (Vec<_>, Vec<_>) = mine.into_iter().partition(|(_, _, release)| *release <= height);
    if ready.is_empty() {
        let next_release = waiting.iter().map(|(_, _, release)| *release).min();
        return Err(TxError::NothingToWithdraw { next_release });
    }
    for (key, amount, _) in ready {
        ctx.state.unbonding.remove(&key);
        ctx.state.credit(who, amount)?;
    }
    Ok(())
}

/// Takes `bps` of everything `who` has bonded in `role`, bonded stake first, then stake
/// still unbonding. Returns what was taken; the caller decides where it goes.
pub(crate) fn slash(
    ctx: &mut Ctx,
    who: Address,
    role: StakeRole,
    bps: u16,
    reason: SlashReason,
) -> Result<Amount, TxError> {
    let bonded_now = bonded(ctx.state, &who, role).unwrap_or_default();
    let unbonding: Vec<_> = ctx
        .state
        .unbonding
        .range((who, 0)..=(who, u64::MAX))
        .filter(|(_, entry)| entry.role == role)
        .map(|(key, entry)| (*key, entry.amount))
        .collect();
    let mut exposed = bonded_now;
    for (_, amount) in &unbonding {
        exposed = exposed.checked_add(*amount).ok_or(TxError::Overflow)?;
    }
    let target = exposed.bps(bps);
    let from_bonded = target.min(bonded_now);
    set_bonded(ctx.state, &who, role, bonded_now.checked_sub(from_bonded).ok_or(TxError::Overflow)?);
    let mut remaining = target.checked_sub(from_bonded).ok_or(TxError::Overflow)?;
    for (key, amount) in unbonding {
        if remaining.is_zero() {
            break;
        }
        let take = remaining.min(amount);
        remaining = remaining.checked_sub(take).ok_or(TxError::Overflow)?;
        if let Some(entry) = ctx.state.unbonding.get_mut(&key) {
            entry.amount = entry.amount.checked_sub(take).ok_or(TxError::Overflow)?;
        }
    }
    if !target.is_zero() {
        ctx.emit(Event::Slashed { who, amount: target, reason });
    }
    Ok(target)
}

pub(crate) fn jail(ctx: &mut Ctx, who: Address, role: StakeRole) {
    let until = ctx.height() + ctx.state.params.jail_blocks;
    match role {
        StakeRole::Validator => {
            if let Some(v) = ctx.state.validators.get_mut(&who) {
                v.jailed_until = until;
            }
        }
        StakeRole::Provider => {
            if let Some(p) = ctx.state.providers.get_mut(&who) {
                p.jailed_until = until;
            }
        }
    }
}

/// Slashes and jails a validator that signed two conflicting headers or chits. The
/// slashed stake is burned.
pub(crate) fn punish_equivocation(ctx: &mut Ctx, evidence: &Evidence) -> Result<(), TxError> {
    let offence = evidence.check(&ctx.state.chain_id)?;
    let offender = Address::of(&offence.offender);
    let height = ctx.height();
    let is_validator = ctx.state.validators.get(&offender).is_some_and(|v| v.key == offence.offender);
    if !is_validator {
        return Err(TxError::UnknownValidator);
    }
    if offence.height.saturating_add(ctx.state.params.unbonding_blocks) < height {
        return Err(TxError::EvidenceTooOld { height: offence.height });
    }
    let key = (offence.offender, offence.height);
    if ctx.state.punished.contains(&key) {
        return Err(TxError::AlreadyPunished);
    }
    ctx.state.punished.insert(key);
    let bps = ctx.state.params.equivocation_slash_bps;
    let taken = slash(ctx, offender, StakeRole::Validator, bps, SlashReason::Equivocation)?;
    ctx.state.burn(taken)?;
    jail(ctx, offender, StakeRole::Validator);
    Ok(())
}

/// At an epoch boundary: pays out the reward pool to the outgoing set by stake, then
/// makes the validators with enough stake and no jail term the new set.
pub(crate) fn next_epoch(ctx: &mut Ctx) -> Result<(), TxError> {
    let pool = ctx.state.reward_pool;
    let total: u128 = ctx.state.active_set.values().map(|(_, stake)| stake.base_units()).sum();
    let mut paid = Amount::ZERO;
    if total > 0 && !pool.is_zero() {
        let shares: Vec<_> = ctx.state.active_set.iter().map(|(a, (_, s))| (*a, *s)).collect();
        for (address, stake) in shares {
            let share = pool.checked_mul_div(stake.base_units(), total).ok_or(TxError::Overflow)?;
            ctx.state.credit(address, share)?;
            paid = paid.checked_add(share).ok_or(TxError::Overflow)?;
        }
        ctx.state.reward_pool = pool.checked_sub(paid).ok_or(TxError::Overflow)?;
    }
    let height = ctx.height();
    let min = ctx.state.params.min_validator_stake;
    ctx.state.active_set = ctx
        .state
        .validators
        .iter()
        .filter(|(_, v)| v.stake >= min && v.jailed_until <= height)
        .map(|(a, v)| (*a, (v.key, v.stake)))
        .collect();
    let epoch = height / ctx.state.params.epoch_blocks;
    ctx.emit(Event::EpochRewards { epoch, paid });
    Ok(())
}
