//! Parameter changes by stake-weighted vote: a validator proposes, validators vote during
//! `voting_blocks`, and the change applies when more than two thirds of the active set's
//! stake approved, each voter weighing what the set records for it.

use ogpu_core::tx::ParamChange;
use ogpu_core::{Address, Hash, ProposalId};

use crate::error::TxError;
use crate::exec::Ctx;
use crate::receipt::Event;
use crate::state::Proposal;

/// Only members of the current validator set propose and vote, and their weight is the
/// stake the set records for them, the same stake that the tally divides by.
fn require_validator(ctx: &Ctx, who: &Address) -> Result<(), TxError> {
    if ctx.state.active_set.contains_key(who) { Ok(()) } else { Err(TxError::NotAValidator) }
}

pub(crate) fn propose(ctx: &mut Ctx, who: Address, tx: Hash, change: ParamChange) -> Result<(), TxError> {
    require_validator(ctx, &who)?;
    ctx.state.params.with(change)?;
    let voting_ends = ctx.height() + ctx.state.params.voting_blocks;
    let proposal = Proposal { proposer: who, change, voting_ends, votes: [(who, true)].into() };
    ctx.state.proposals.insert(ProposalId(tx), proposal);
    Ok(())
}

pub(crate) fn vote(ctx: &mut Ctx, who: Address, id: ProposalId, approve: bool) -> Result<(), TxError> {
    require_validator(ctx, &who)?;
    let proposal = ctx.state.proposals.get_mut(&id).ok_or(TxError::UnknownProposal(id.0))?;
    if proposal.votes.insert(who, approve).is_some() {
        return Err(TxError::AlreadyVoted);
    }
    Ok(())
}

/// Tallies the proposals whose vote ends at this height, weighing each vote by the
/// voter's stake now, against the stake of the active validator set.
pub(crate) fn close_votes(ctx: &mut Ctx) -> Result<(), TxError> {
    let height = ctx.height();
    let closing: Vec<_> =
        ctx.state.proposals.iter().filter(|(_, p)| p.voting_ends <= height).map(|(id, p)| (*id, p.clone())).collect();
    let total: u128 = ctx.state.active_set.values().map(|(_, stake)| stake.base_units()).sum();
    for (id, proposal) in closing {
        ctx.state.proposals.remove(&id);
        let approving: u128 = proposal
            .votes
            .iter()
            .filter(|(_, approve)| **approve)
            .filter_map(|(voter, _)| ctx.state.active_set.get(voter).map(|(_, stake)| stake.base_units()))
            .sum();
        let passes =
            approving.checked_mul(3).ok_or(TxError::Overflow)? > total.checked_mul(2).ok_or(TxError::Overflow)?;
        match ctx.state.params.with(proposal.change) {
            Ok(params) if passes => {
                ctx.state.params = params;
                ctx.emit(Event::ProposalPassed { proposal: id });
            }
            _ => ctx.emit(Event::ProposalRejected { proposal: id }),
        }
    }
    Ok(())
}
