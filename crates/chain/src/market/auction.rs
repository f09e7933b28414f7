//! Sealed-bid reverse auctions. Providers commit to a hash of their price, then reveal it.
//! The lowest price adjusted by reputation wins, ties broken by block randomness, and each
//! winner is paid the critical price: the highest price at which it would still have won
//! against the best losing bid, capped at the task's maximum. With equal reputations that
//! is the second-best price (a reverse Vickrey auction, where bidding one's true cost is
//! the best strategy).

use std::cmp::Ordering;

use ogpu_core::spec::Market;
use ogpu_core::tx::bid_commitment;
use ogpu_core::{Address, Amount, Hash, TaskId};

use crate::error::Ineligible;
use crate::error::TxError;
use crate::exec::Ctx;
use crate::market::{load, screen, store};
use crate::receipt::Event;
use crate::settle;
use crate::state::{Bid, Executor, Outcome, Phase, ScreeningReport, Stage, State, Task};

fn bid_window(task: &Task) -> u64 {
    match task.spec.market {
        Market::Auction { bid_window, .. } => u64::from(bid_window),
        Market::Pool { .. } => 0,
    }
}

/// Opens a new auction round for the task's vacant executor slots, or ends the task when
/// it has used up its rounds.
pub(crate) fn open_auction(ctx: &mut Ctx, id: TaskId, task: &mut Task) {
    task.rounds += 1;
    if task.rounds > ctx.state.params.max_rounds {
        let reason = format!("no provider completed the task in {} auction rounds", ctx.state.params.max_rounds);
        // Refunds move money the task already holds; they cannot fail short of a broken
        // invariant, which the block's money check would then report.
        let _ = settle::end_with_refund(ctx, id, task, Outcome::Failed(reason));
        return;
    }
    let commit_end = ctx.height() + bid_window(task);
    let reveal_end = commit_end + ctx.state.params.bid_reveal_blocks;
    task.phase = Phase::Bidding { commit_end, reveal_end, bids: Default::default() };
    ctx.emit(Event::AuctionOpened { task: id, round: task.rounds, commit_end, reveal_end });
}

pub(crate) fn commit_bid(ctx: &mut Ctx, who: Address, id: TaskId, commitment: Hash) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    let height = ctx.height();
    let window = bid_window(&task);
    let Phase::Bidding { commit_end, bids, .. } = &mut task.phase else {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    };
    if height > *commit_end {
        return Err(TxError::OutsideWindow { opens: commit_end.saturating_sub(window), closes: *commit_end, height });
    }
    if bids.contains_key(&who) {
        return Err(TxError::DoubleCommit);
    }
    let snapshot = Task { phase: Phase::Executing, ..task.clone() };
    screen(ctx.state, &who, &task.spec.requirements, Some(&snapshot)).map_err(TxError::Ineligible)?;
    if let Phase::Bidding { bids, .. } = &mut task.phase {
        bids.insert(who, Bid { commitment, revealed: None });
    }
    store(ctx, id, task);
    Ok(())
}

pub(crate) fn reveal_bid(ctx: &mut Ctx, who: Address, id: TaskId, price: Amount, salt: &Hash) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    let height = ctx.height();
    let max = task.price_cap;
    let Phase::Bidding { commit_end, reveal_end, bids } = &mut task.phase else {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    };
    if height <= *commit_end || height > *reveal_end {
        return Err(TxError::OutsideWindow { opens: *commit_end + 1, closes: *reveal_end, height });
    }
    let bid = bids.get_mut(&who).ok_or(TxError::RevealWithoutCommit)?;
    if bid.revealed.is_some() {
        return Err(TxError::AlreadyRevealed);
    }
    if bid_commitment(&id, &who, price, salt) != bid.commitment {
        return Err(TxError::RevealMismatch);
    }
    if price > max {
        return Err(TxError::PriceAboveMax { price, max });
    }
    bid.revealed = Some(price);
    store(ctx, id, task);
    Ok(())
}

/// A revealed, still eligible bid.
struct Candidate {
    provider: Address,
    price: Amount,
    /// 1000 + reputation: the price is divided by this to rank bids.
    weight: u128,
    tie_break: Hash,
}

impl Candidate {
    /// Lower adjusted price first (`price / weight`, compared by cross-multiplying so no
    /// rounding enters), then the randomness-drawn tie break.
    fn rank(&self, other: &Candidate) -> Ordering {
        let mine = self.price.base_units().checked_mul(other.weight);
        let theirs = other.price.base_units().checked_mul(self.weight);
        mine.cmp(&theirs).then(self.tie_break.cmp(&other.tie_break))
    }
}

/// Closes the auction: awards the vacant slots, or ends the task with a screening report
/// when no eligible bid came in.
pub(crate) fn award(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<(), TxError> {
    let Phase::Bidding { bids, .. } = &task.phase else {
        return Ok(());
    };
    let bids = bids.clone();
    let slots = usize::from(task.spec.verification.executors()).saturating_sub(task.executors.len());
    let mut candidates: Vec<Candidate> = bids
        .iter()
        .filter_map(|(provider, bid)| Some((provider, bid.revealed?)))
        .filter(|(provider, _)| screen(ctx.state, provider, &task.spec.requirements, Some(task)).is_ok())
        .map(|(provider, price)| Candidate {
            provider: *provider,
            price,
            weight: 1_000 + u128::from(ctx.state.providers.get(provider).map_or(0, |p| p.reputation)),
            tie_break: Hash::tagged("ogpu/tie-break", &[&ctx.state.randomness.0, &id.0.0, &provider.0]),
        })
        .collect();
    if candidates.is_empty() {
        let report = screening_report(ctx.state, task, &bids);
        return settle::end_with_refund(ctx, id, task, Outcome::Unfilled(report));
    }
    candidates.sort_by(Candidate::rank);
    let winners = slots.min(candidates.len());
    let best_loser = candidates.get(winners);
    let start_by = ctx.height() + ctx.state.params.start_timeout_blocks;
    for winner in &candidates[..winners] {
        let price = match best_loser {
            Some(loser) => loser
                .price
                .checked_mul_div(winner.weight, loser.weight)
                .ok_or(TxError::Overflow)?
                .min(task.price_cap)
                .max(winner.price),
            None => task.price_cap,
        };
        task.executors.push(Executor {
            provider: winner.provider,
            price,
            stage: Stage::Awarded,
            stage_due: start_by,
            sealed: None,
        });
        ctx.emit(Event::Awarded { task: id, provider: winner.provider, price });
    }
    if winners < slots {
        open_auction(ctx, id, task);
    } else {
        task.phase = Phase::Executing;
    }
    Ok(())
}

/// Counts, over every registered provider, the first requirement each fails.
fn screening_report(state: &State, task: &Task, bids: &std::collections::BTreeMap<Address, Bid>) -> ScreeningReport {
    let mut report = ScreeningReport {
        providers: state.providers.len() as u32,
        sealed_bids: bids.len() as u32,
        revealed_bids: bids.values().filter(|b| b.revealed.is_some()).count() as u32,
        ..Default::default()
    };
    for provider in state.providers.keys() {
        let counter = match screen(state, provider, &task.spec.requirements, Some(task)) {
            Ok(()) => &mut report.eligible,
            Err(Ineligible::NotRegistered) => continue,
            Err(Ineligible::StakeTooLow) => &mut report.stake_too_low,
            Err(Ineligible::Jailed) => &mut report.jailed,
            Err(Ineligible::TooFewGpus) => &mut report.too_few_gpus,
            Err(Ineligible::TooLittleVram) => &mut report.too_little_vram,
            Err(Ineligible::ModelNotAllowed) => &mut report.model_not_allowed,
            Err(Ineligible::ReputationTooLow) => &mut report.reputation_too_low,
            Err(Ineligible::Excluded) => &mut report.excluded,
            Err(Ineligible::NoReaderKey) => &mut report.no_reader_key,
        };
        *counter += 1;
    }
    report
}
