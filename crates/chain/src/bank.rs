//! Transfers and the monetary schedule: block rewards that halve on a schedule and never
//! take the supply past the cap.

use ogpu_core::{Address, Amount};

use crate::error::TxError;
use crate::exec::Ctx;
use crate::params::{Params, SUPPLY_CAP};
use crate::receipt::Event;

pub(crate) fn transfer(ctx: &mut Ctx, from: Address, to: Address, amount: Amount) -> Result<(), TxError> {
    if amount.is_zero() {
        return Err(TxError::ZeroAmount);
    }
    ctx.state.debit(from, amount)?;
    ctx.state.credit(to, amount)
}

/// The reward the schedule sets for `height`, before the cap is applied.
pub(crate) fn scheduled_reward(params: &Params, height: u64) -> Amount {
    let halvings = height / params.halving_blocks.max(1);
    match u32::try_from(halvings) {
        Ok(h) if h < 128 => Amount::from_base_units(params.initial_block_reward.base_units() >> h),
        _ => Amount::ZERO,
    }
}

/// Mints this block's reward into the reward pool, clipped so that the supply never
/// exceeds [`SUPPLY_CAP`].
pub(crate) fn mint_block_reward(ctx: &mut Ctx) -> Result<(), TxError> {
    let room = SUPPLY_CAP.saturating_sub(ctx.state.supply.minted);
    let reward = scheduled_reward(&ctx.state.params, ctx.height()).min(room);
    if reward.is_zero() {
        return Ok(());
    }
    ctx.state.supply.minted = ctx.state.supply.minted.checked_add(reward).ok_or(TxError::Overflow)?;
    ctx.state.reward_pool = ctx.state.reward_pool.checked_add(reward).ok_or(TxError::Overflow)?;
    ctx.emit(Event::BlockReward { amount: reward });
    Ok(())
}
