//! Verification: judging executors' revealed results by the task's policy, choosing
//! verifiers by stake with block randomness, collecting their signed reports, the
//! stake-weighted verdict, and challenges backed by a bond.

use ogpu_core::rng::DetRng;
use ogpu_core::spec::{Market, Requirements, VerificationPolicy};
use ogpu_core::tx::{ResultClaim, VerificationReport};
use ogpu_core::{Address, Amount, TaskId};

use crate::error::TxError;
use crate::exec::Ctx;
use crate::market::{self, load, open_auction, screen, store};
use crate::params::DISPUTE_VERIFIERS;
use crate::receipt::{Event, PayReason};
use crate::settle;
use crate::state::{Challenge, Outcome, Phase, Stage, Task, VerifierSlot, VerifyReason};

fn claims(task: &Task) -> Vec<(Address, ResultClaim)> {
    task.executors
        .iter()
        .filter_map(|e| match e.stage {
            Stage::Revealed(claim) => Some((e.provider, claim)),
            _ => None,
        })
        .collect()
}

/// Judges a task whose executors have all revealed: settles agreement by the policy,
/// resolves a replication quorum, or calls verifiers on a disagreement.
pub(crate) fn evaluate(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<(), TxError> {
    let claims = claims(task);
    let policy = market::policy(ctx.state, task);
    let agree = claims.windows(2).all(|pair| pair[0].1 == pair[1].1);
    if !agree {
        // Under a tolerance, results that differ may all be right: verifiers judge them.
        if let VerificationPolicy::Replicate { quorum, tolerance, .. } = policy
            && tolerance.parts_per_million() == 0
        {
            let majority = claims
                .iter()
                .find(|(_, claim)| claims.iter().filter(|(_, other)| other == claim).count() >= usize::from(quorum));
            if let Some((_, winning)) = majority {
                let winning = *winning;
                for (provider, claim) in &claims {
                    if *claim != winning {
                        settle::fault(ctx, id, task, *provider)?;
                    }
                }
                open_challenges(ctx, task);
                return Ok(());
            }
        }
        if start_verification(ctx, id, task, VerifyReason::Dispute, DISPUTE_VERIFIERS) {
            return Ok(());
        }
        ctx.emit(Event::VerificationSkipped { task: id, reason: VerifyReason::Dispute });
        if let Market::Pool { .. } = task.spec.market {
            // In a race the earliest valid commit wins; replicas that disagree with it
            // simply earn nothing (see `settle::earnings`).
            open_challenges(ctx, task);
            return Ok(());
        }
        let reason = "executors disagree and no verifier is available".to_string();
        return settle::end_with_refund(ctx, id, task, Outcome::Failed(reason));
    }
    let wanted = match policy {
        VerificationPolicy::SpotCheck { p, .. } => {
            let draw = DetRng::new(&ctx.state.randomness, "ogpu/spot-check", &[&id.0.0]).below(1_000_000);
            (draw < u128::from(p.0)).then_some((VerifyReason::SpotCheck, 1))
        }
        VerificationPolicy::ProofOfLearning { segments, .. } => {
            Some((VerifyReason::ProofOfLearning, usize::from(segments)))
        }
        VerificationPolicy::None | VerificationPolicy::Replicate { .. } => None,
    };
    if let Some((reason, count)) = wanted {
        if start_verification(ctx, id, task, reason, count) {
            return Ok(());
        }
        ctx.emit(Event::VerificationSkipped { task: id, reason });
    }
    open_challenges(ctx, task);
    Ok(())
}

fn open_challenges(ctx: &mut Ctx, task: &mut Task) {
    task.phase = Phase::Challengeable { challenge_end: ctx.height() + ctx.state.params.challenge_blocks };
}

/// Picks up to `count` verifiers by stake among the providers that could run the task and
/// have no part in it (not an executor, the client or a challenger). Returns false,
/// changing nothing, when there is none or the verification budget cannot pay them.
fn start_verification(ctx: &mut Ctx, id: TaskId, task: &mut Task, reason: VerifyReason, count: usize) -> bool {
    let requirements = match task.spec.market {
        Market::Auction { .. } => task.spec.requirements.clone(),
        Market::Pool { .. } => Requirements::default(),
    };
    let interested = [Some(task.client), task.challenge.as_ref().map(|c| c.challenger)];
    let candidates: Vec<(Address, u128)> = ctx
        .state
        .providers
        .iter()
        .filter(|(address, _)| !interested.contains(&Some(**address)))
        .filter(|(address, _)| screen(ctx.state, address, &requirements, Some(task)).is_ok())
        .map(|(address, provider)| (*address, provider.stake.base_units()))
        .collect();
    let round = [task.rounds.to_le_bytes(), (reason as u32).to_le_bytes()].concat();
    let mut rng = DetRng::new(&ctx.state.randomness, "ogpu/verifiers", &[&id.0.0, &round]);
    let chosen = rng.sample_weighted(&candidates, count);
    let fee = task.price_cap.bps(ctx.state.params.verifier_fee_bps);
    let affordable = fee.checked_mul(chosen.len() as u128).is_some_and(|needed| needed <= task.verification_budget);
    if chosen.is_empty() || !affordable {
        return false;
    }
    let checkpoints = claims(task).first().and_then(|(_, claim)| claim.trace).map_or(0, |t| t.checkpoints);
    task.verifiers = chosen
        .iter()
        .map(|verifier| VerifierSlot {
            verifier: *verifier,
            weight: ctx.state.providers.get(verifier).map_or(Amount::ZERO, |p| p.stake),
            segment: (reason == VerifyReason::ProofOfLearning)
                .then(|| rng.below(u128::from(checkpoints.saturating_sub(1).max(1))) as u32),
            reports: Default::default(),
        })
        .collect();
    task.phase = Phase::Verifying { reason, report_end: ctx.height() + ctx.state.params.verify_blocks };
    ctx.emit(Event::VerificationStarted { task: id, reason, verifiers: chosen });
    true
}

pub(crate) fn report(ctx: &mut Ctx, who: Address, id: TaskId, report: &VerificationReport) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    let Phase::Verifying { reason, .. } = task.phase else {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    };
    let slot = task.verifiers.iter().position(|s| s.verifier == who).ok_or(TxError::NotSelectedVerifier)?;
    if !claims(&task).iter().any(|(provider, _)| *provider == report.subject) {
        return Err(TxError::NotAnExecutor);
    }
    if let (VerifyReason::ProofOfLearning, VerificationPolicy::ProofOfLearning { tolerance, .. }) =
        (reason, task.spec.verification)
        && report.pass != (report.distance_ppm <= tolerance.0)
    {
        return Err(TxError::InconsistentReport("a pass must be within the tolerance and a fail beyond it"));
    }
    if task.verifiers[slot].reports.insert(report.subject, *report).is_some() {
        return Err(TxError::DuplicateReport);
    }
    let executors = claims(&task).len();
    if task.verifiers.iter().all(|s| s.reports.len() == executors) {
        tally(ctx, id, &mut task)?;
    }
    store(ctx, id, task);
    Ok(())
}

/// Closes a verification round: each executor's verdict is the stake-weighted majority of
/// the reports on it (no report, no fault); verifiers who reported are paid.
pub(crate) fn tally(ctx: &mut Ctx, id: TaskId, task: &mut Task) -> Result<(), TxError> {
    let Phase::Verifying { reason, .. } = task.phase else {
        return Ok(());
    };
    let slots = std::mem::take(&mut task.verifiers);
    let mut faulted = Vec::new();
    for (executor, _) in claims(task) {
        let (mut pass, mut fail) = (0u128, 0u128);
        for slot in &slots {
            match slot.reports.get(&executor) {
                Some(r) if r.pass => pass += slot.weight.base_units(),
                Some(_) => fail += slot.weight.base_units(),
                None => {}
            }
        }
        ctx.emit(Event::Verdict { task: id, executor, pass: fail <= pass });
        if fail > pass {
            faulted.push(executor);
        }
    }
    let fee = task.price_cap.bps(ctx.state.params.verifier_fee_bps);
    for slot in slots.iter().filter(|s| !s.reports.is_empty()) {
        settle::pay(ctx, id, &mut task.verification_budget, slot.verifier, fee, PayReason::Verification)?;
    }
    for executor in &faulted {
        settle::fault(ctx, id, task, *executor)?;
    }
    let silent = slots.iter().all(|s| s.reports.is_empty());
    if reason == VerifyReason::Challenge {
        // A challenge nobody answered proves nothing either way: the bond goes back.
        settle::resolve_challenge(ctx, id, task, !faulted.is_empty() || silent)?;
    }
    // A private task's client that gave a chosen verifier no keys stopped the check itself:
    // its executors are paid as if they passed, or the client could void honest work (and
    // keep its result) by withholding keys.
    let keys_withheld = task.spec.private.is_some() && slots.iter().any(|s| !task.keys.contains_key(&s.verifier));
    if reason == VerifyReason::Dispute && silent && !keys_withheld {
        let reason = "executors disagree and no verifier reported".to_string();
        return settle::end_with_refund(ctx, id, task, Outcome::Failed(reason));
    }
    if task.executors.is_empty() {
        match task.spec.market {
            Market::Auction { .. } => open_auction(ctx, id, task),
            Market::Pool { .. } => market::open_race(ctx, id, task),
        }
    } else if reason == VerifyReason::Challenge {
        settle::complete(ctx, id, task)?;
    } else {
        open_challenges(ctx, task);
    }
    Ok(())
}

pub(crate) fn challenge(ctx: &mut Ctx, who: Address, id: TaskId, bond: Amount) -> Result<(), TxError> {
    let mut task = load(ctx.state, id)?;
    if !matches!(task.phase, Phase::Challengeable { .. }) {
        return Err(TxError::WrongPhase { phase: task.phase.name() });
    }
    if task.challenge.is_some() {
        return Err(TxError::AlreadyChallenged);
    }
    let min = ctx.state.params.challenge_bond;
    if bond < min {
        return Err(TxError::BondTooSmall { min });
    }
    if task.executors.iter().any(|e| e.provider == who) {
        return Err(TxError::NotAnExecutor);
    }
    ctx.state.debit(who, bond)?;
    task.challenge = Some(Challenge { challenger: who, bond });
    if !start_verification(ctx, id, &mut task, VerifyReason::Challenge, DISPUTE_VERIFIERS) {
        return Err(TxError::NoVerifiersAvailable);
    }
    store(ctx, id, task);
    Ok(())
}
