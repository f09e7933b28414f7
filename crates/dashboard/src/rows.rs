//! What the customer pages show of a task, read from the task and its chain events: the
//! row of the task table, the timeline, and what the task cost its client.

use ogpu_chain::Event;
use ogpu_chain::receipt::PayReason;
use ogpu_chain::state::{Outcome, Phase};
use ogpu_client::EventRecord;
use ogpu_client::types::TaskView;
use ogpu_core::spec::{Market, VerificationPolicy};
use ogpu_core::{Address, Amount, TaskId};

/// One task as the task table shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRow {
    pub id: TaskId,
    pub name: String,
    pub kind: ogpu_core::spec::WorkloadKind,
    pub phase: &'static str,
    /// How it ended (`completed`, `cancelled`, `unfilled`, `failed: ...`), once it has.
    pub outcome: Option<String>,
    pub market: &'static str,
    /// The first executor awarded, and its price.
    pub provider: Option<Address>,
    pub price: Option<Amount>,
    pub max_price: Amount,
    /// What the task took from the client: reserved and topped up, less what came back.
    /// While it runs, that is what it holds in reserve.
    pub cost: Amount,
    pub verification: String,
    /// `accepted`, `rejected` or `skipped`, once verifiers have spoken.
    pub verdict: Option<&'static str>,
    pub submitted_height: u64,
    /// Blocks from the first award to the end.
    pub run_blocks: Option<u64>,
}

impl TaskRow {
    /// The row of the task `view`, from `events` (its events: none for a task whose award,
    /// cost and verdict are not shown, such as another client's open auction).
    pub fn of(view: &TaskView, events: &[EventRecord]) -> TaskRow {
        let task = &view.task;
        let events_at = || events.iter().map(|record| (record.height, &record.event));
        let awarded = events_at().find_map(|(height, event)| match event {
            Event::Awarded { provider, price, .. } => Some((height, *provider, *price)),
            _ => None,
        });
        let ended = events_at().find_map(|(height, event)| matches!(event, Event::TaskEnded { .. }).then_some(height));
        TaskRow {
            id: view.id,
            name: task.spec.name.clone(),
            kind: task.spec.workload.kind,
            phase: task.phase.name(),
            outcome: match &task.phase {
                Phase::Done(outcome) => Some(outcome_text(outcome)),
                _ => None,
            },
            market: match task.spec.market {
                Market::Auction { .. } => "auction",
                Market::Pool { .. } => "pool",
            },
            provider: awarded.map(|(_, provider, _)| provider),
            price: awarded.map(|(_, _, price)| price),
            max_price: task.price_cap,
            cost: cost(task.client, events),
            verification: policy_text(&task.spec.verification),
            verdict: verdict(events_at().map(|(_, event)| event)),
            submitted_height: task.submitted_at,
            run_blocks: awarded.zip(ended).map(|((from, _, _), to)| to.saturating_sub(from)),
        }
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Completed { .. } => "completed".into(),
        Outcome::Cancelled => "cancelled".into(),
        Outcome::Unfilled(_) => "unfilled".into(),
        Outcome::Failed(why) => format!("failed: {why}"),
    }
}

fn policy_text(policy: &VerificationPolicy) -> String {
    let percent = |ratio: ogpu_core::spec::Ratio| f64::from(ratio.parts_per_million()) / 10_000.0;
    let within = |tolerance: ogpu_core::spec::Ratio| match tolerance.parts_per_million() {
        0 => String::new(),
        _ => format!(" within {}%", percent(tolerance)),
    };
    match policy {
        VerificationPolicy::None => "reputation only".into(),
        VerificationPolicy::Replicate { n, quorum, tolerance } => {
            format!("{n} replicas, {quorum} must agree{}", within(*tolerance))
        }
        VerificationPolicy::SpotCheck { p, tolerance } => {
            format!("spot check, {}% of runs{}", percent(*p), within(*tolerance))
        }
        VerificationPolicy::ProofOfLearning { segments, tolerance } => {
            format!("proof of learning, {segments} segments within {}%", percent(*tolerance))
        }
    }
}

fn verdict<'a>(mut events: impl Iterator<Item = &'a Event>) -> Option<&'static str> {
    let mut seen = None;
    for event in events.by_ref() {
        match event {
            Event::Verdict { pass: false, .. } => return Some("rejected"),
            Event::Verdict { pass: true, .. } => seen = Some("accepted"),
            Event::VerificationSkipped { .. } if seen.is_none() => seen = Some("skipped"),
            _ => {}
        }
    }
    seen
}

/// A change to what a client has spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendChange {
    Reserved(Amount),
    Returned(Amount),
}

impl SpendChange {
    pub fn apply(self, total: Amount) -> Amount {
        match self {
            SpendChange::Reserved(amount) => total.checked_add(amount).unwrap_or(total),
            SpendChange::Returned(amount) => total.saturating_sub(amount),
        }
    }
}

/// What a task's `events` took from `client`: reserved and topped up, less what came back.
pub fn cost(client: Address, events: &[EventRecord]) -> Amount {
    spend_changes(client, events).fold(Amount::ZERO, |total, (_, change)| change.apply(total))
}

/// How `client`'s spending changed with each of a task's events, with its height:
/// reserved at submission and top-ups, returned by refunds and payments to the client
/// (its trust lock, compensation from a slashed provider).
pub fn spend_changes(client: Address, events: &[EventRecord]) -> impl Iterator<Item = (u64, SpendChange)> + '_ {
    events.iter().filter_map(move |EventRecord { height, event }| {
        let change = match event {
            Event::TaskSubmitted { client: who, reserved, .. } if *who == client => SpendChange::Reserved(*reserved),
            Event::ToppedUp { added, .. } => SpendChange::Reserved(*added),
            Event::Refunded { client: who, amount, .. } if *who == client => SpendChange::Returned(*amount),
            Event::Paid { to, amount, .. } if *to == client => SpendChange::Returned(*amount),
            _ => return None,
        };
        Some((*height, change))
    })
}

/// One line of a task's timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineEntry {
    pub height: u64,
    pub time_ms: Option<u64>,
    pub event: &'static str,
    pub text: String,
}

/// An event about a task in words.
pub fn describe(event: &Event) -> (&'static str, String) {
    match event {
        Event::TaskSubmitted { reserved, .. } => ("submitted", format!("submitted, {reserved} oGPU reserved")),
        Event::AuctionOpened { round, commit_end, reveal_end, .. } => (
            "auction",
            format!("auction round {round}: sealed bids until block {commit_end}, reveals until {reveal_end}"),
        ),
        Event::Awarded { provider, price, .. } => ("awarded", format!("awarded to {provider} at {price} oGPU")),
        Event::RaceOpened { round, commit_end, .. } => {
            ("race", format!("race round {round}: results until block {commit_end}"))
        }
        Event::VerificationStarted { reason, verifiers, .. } => {
            ("verifying", format!("verification ({reason:?}) by {} verifiers", verifiers.len()))
        }
        Event::Verdict { executor, pass, .. } => {
            ("verdict", format!("{executor}'s result {}", if *pass { "passed" } else { "failed" }))
        }
        Event::VerificationSkipped { reason, .. } => ("verification skipped", format!("no {reason:?} this time")),
        Event::Slashed { who, amount, reason } => ("slashed", format!("{who} slashed {amount} oGPU: {reason:?}")),
        Event::Paid { to, amount, why, .. } => ("paid", format!("{amount} oGPU paid to {to} for {}", pay_text(*why))),
        Event::Refunded { amount, .. } => ("refunded", format!("{amount} oGPU back to the client")),
        Event::ToppedUp { price_cap, added, .. } => {
            ("topped up", format!("price cap raised to {price_cap} oGPU, {added} oGPU more reserved"))
        }
        Event::TaskEnded { outcome, .. } => ("ended", format!("ended: {}", outcome_text(outcome))),
        other => ("event", format!("{other:?}")),
    }
}

fn pay_text(why: PayReason) -> &'static str {
    match why {
        PayReason::Execution => "the execution",
        PayReason::Replica => "a replica",
        PayReason::Verification => "verifying",
        PayReason::Compensation => "compensation",
        PayReason::ChallengeBond => "the challenge bond",
        PayReason::ProtocolFee => "the protocol fee",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(height: u64, event: Event) -> EventRecord {
        EventRecord { height, event }
    }

    #[test]
    fn spend_counts_reservations_and_top_ups_less_what_came_back_to_the_client() {
        let (me, provider, task) = (Address([1; 20]), Address([2; 20]), TaskId(ogpu_core::Hash([3; 32])));
        let events = vec![
            record(5, Event::TaskSubmitted { task, client: me, reserved: Amount::ogpu(10) }),
            record(6, Event::ToppedUp { task, price_cap: Amount::ogpu(20), added: Amount::ogpu(3) }),
            record(9, Event::Paid { task, to: provider, amount: Amount::ogpu(4), why: PayReason::Execution }),
            record(9, Event::Paid { task, to: me, amount: Amount::ogpu(1), why: PayReason::Compensation }),
            record(9, Event::Refunded { task, client: me, amount: Amount::ogpu(2) }),
        ];
        let changes: Vec<_> = spend_changes(me, &events).collect();
        assert_eq!(
            changes,
            [
                (5, SpendChange::Reserved(Amount::ogpu(10))),
                (6, SpendChange::Reserved(Amount::ogpu(3))),
                (9, SpendChange::Returned(Amount::ogpu(1))),
                (9, SpendChange::Returned(Amount::ogpu(2))),
            ]
        );
        let total = changes.iter().fold(Amount::ZERO, |total, (_, change)| change.apply(total));
        assert_eq!(total, Amount::ogpu(10), "10 + 3 - 1 - 2; the provider's pay comes out of the reservation");
    }

    #[test]
    fn a_failed_verdict_outweighs_passes() {
        let executor = Address([1; 20]);
        let task = TaskId(ogpu_core::Hash([3; 32]));
        let pass = Event::Verdict { task, executor, pass: true };
        let fail = Event::Verdict { task, executor, pass: false };
        assert_eq!(verdict([&pass].into_iter()), Some("accepted"));
        assert_eq!(verdict([&pass, &fail].into_iter()), Some("rejected"));
        assert_eq!(verdict(std::iter::empty()), None);
    }
}
