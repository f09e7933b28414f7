//! What a provider's events add up to: earnings per task and per reason, in total and over
//! time, and the slashes it suffered. The CLI (`provider earnings`) and the provider
//! dashboard read the same sums.

use std::collections::BTreeMap;

use ogpu_chain::Event;
use ogpu_chain::receipt::{PayReason, SlashReason};
use ogpu_core::{Address, Amount, TaskId};

use crate::EventRecord;

/// A provider's earnings and slashes among the events given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Earnings {
    /// Everything paid to it.
    pub total: Amount,
    /// Paid per task, with why.
    pub by_task: BTreeMap<TaskId, (Amount, Vec<PayReason>)>,
    /// Paid per reason (execution, verification, ...).
    pub by_reason: BTreeMap<PayReason, Amount>,
    /// The running total after each block that paid it: `(height, total)`.
    pub over_time: Vec<(u64, Amount)>,
    /// Its slashes: `(height, amount, reason)`.
    pub slashes: Vec<(u64, Amount, SlashReason)>,
}

/// The earnings of `provider` among `events` (oldest first). Sums saturate at the largest
/// amount rather than fail: no chain holds that much.
pub fn earnings(provider: Address, events: &[EventRecord]) -> Earnings {
    let mut earnings = Earnings::default();
    let add =
        |to: &mut Amount, amount: Amount| *to = to.checked_add(amount).unwrap_or(Amount::from_base_units(u128::MAX));
    for EventRecord { height, event } in events {
        match event {
            Event::Paid { task, to, amount, why } if *to == provider => {
                let (paid, reasons) = earnings.by_task.entry(*task).or_default();
                add(paid, *amount);
                if !reasons.contains(why) {
                    reasons.push(*why);
                }
                add(earnings.by_reason.entry(*why).or_default(), *amount);
                add(&mut earnings.total, *amount);
                match earnings.over_time.last_mut() {
                    Some((last, total)) if last == height => *total = earnings.total,
                    _ => earnings.over_time.push((*height, earnings.total)),
                }
            }
            Event::Slashed { who, amount, reason } if *who == provider => {
                earnings.slashes.push((*height, *amount, *reason));
            }
            _ => {}
        }
    }
    earnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogpu_core::Hash;

    #[test]
    fn payments_add_up_by_task_reason_and_block_and_slashes_stay_apart() {
        let (me, other) = (Address([1; 20]), Address([2; 20]));
        let (a, b) = (TaskId(Hash([1; 32])), TaskId(Hash([2; 32])));
        let paid = |height, task, to, ogpu, why| EventRecord {
            height,
            event: Event::Paid { task, to, amount: Amount::ogpu(ogpu), why },
        };
        let events = [
            paid(5, a, me, 3, PayReason::Execution),
            paid(5, a, me, 1, PayReason::Replica),
            paid(6, a, other, 9, PayReason::Execution),
            paid(8, b, me, 2, PayReason::Verification),
            EventRecord {
                height: 9,
                event: Event::Slashed { who: me, amount: Amount::ogpu(7), reason: SlashReason::WrongResult },
            },
        ];
        let earnings = earnings(me, &events);
        assert_eq!(earnings.total, Amount::ogpu(6));
        assert_eq!(earnings.by_task[&a], (Amount::ogpu(4), vec![PayReason::Execution, PayReason::Replica]));
        assert_eq!(earnings.by_reason[&PayReason::Verification], Amount::ogpu(2));
        assert_eq!(earnings.over_time, [(5, Amount::ogpu(4)), (8, Amount::ogpu(6))]);
        assert_eq!(earnings.slashes, [(9, Amount::ogpu(7), SlashReason::WrongResult)]);
    }
}
