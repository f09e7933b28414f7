//! Property tests: random sequences of valid and invalid transactions, with the chain's
//! invariants checked after every block (see `common::check_invariants`, run by
//! `Net::block`): money is conserved, supply stays under the cap, timers match tasks, and
//! the same block applied twice to the same state gives the same root.

mod common;

use std::collections::HashMap;

use common::*;
use ogpu_chain::Params;
use ogpu_chain::params::SUPPLY_CAP;
use ogpu_core::spec::{Market, PoolSpec, Ratio, VerificationPolicy, WorkloadKind};
use ogpu_core::tx::{ParamChange, ParamKey, ResultClaim, StakeRole, Transaction, TxBody, VerificationReport};
use ogpu_core::{Amount, BlobHash, Hash, PoolId, ProposalId, SecretKey, TaskId};
use proptest::prelude::*;

/// One step of a random history: an operation kind and numbers that pick its actors,
/// amounts and targets among what exists at that point.
type Op = (u8, u64, u64, u8);

struct World {
    net: Net,
    actors: Vec<SecretKey>,
    tasks: Vec<TaskId>,
    pools: Vec<PoolId>,
    proposals: Vec<ProposalId>,
    bids: HashMap<(TaskId, usize), Amount>,
}

fn policy(pick: u8) -> VerificationPolicy {
    match pick % 5 {
        0 => VerificationPolicy::None,
        1 => VerificationPolicy::Replicate { n: 2, quorum: 2 },
        2 => VerificationPolicy::SpotCheck { p: Ratio(500_000) },
        3 => VerificationPolicy::ProofOfLearning { segments: 2, tolerance: Ratio(10_000) },
        _ => VerificationPolicy::Replicate { n: 3, quorum: 2 },
    }
}

impl World {
    fn new() -> World {
        let actors: Vec<SecretKey> = (0..6).map(|i| key(&format!("actor-{i}"))).collect();
        let funded: Vec<(&SecretKey, &str)> = actors.iter().map(|k| (k, "5000")).collect();
        let params = Params { initial_block_reward: ogpu("1"), epoch_blocks: 7, ..test_params() };
        World {
            net: Net::with_params(&funded, params),
            actors,
            tasks: vec![],
            pools: vec![],
            proposals: vec![],
            bids: HashMap::new(),
        }
    }

    fn pick<T: Copy>(items: &[T], n: u64) -> Option<T> {
        (!items.is_empty()).then(|| items[(n % items.len() as u64) as usize])
    }

    /// Turns an op into a transaction, valid or not; it is the chain's job to sort them out.
    fn tx(&mut self, (kind, a, b, c): Op) -> Option<Transaction> {
        let who = (a % self.actors.len() as u64) as usize;
        let other = (b % self.actors.len() as u64) as usize;
        let key = self.actors[who].clone();
        let amount = Amount::from_base_units(u128::from(b % 300) * 10u128.pow(18) + u128::from(c));
        let task = Self::pick(&self.tasks, b);
        let claim = ResultClaim {
            output: Hash::of_bytes(&[c % 2]),
            trace: (c % 3 == 0).then_some(ogpu_core::tx::Trace { root: Hash::ZERO, checkpoints: 4 }),
        };
        let body = match kind % 20 {
            0 => TxBody::Transfer { to: addr(&self.actors[other]), amount },
            1 => TxBody::Stake { role: if c % 2 == 0 { StakeRole::Provider } else { StakeRole::Validator }, amount },
            2 => TxBody::Unstake { role: if c % 2 == 0 { StakeRole::Provider } else { StakeRole::Validator }, amount },
            3 => TxBody::Withdraw,
            4 => TxBody::RegisterProvider {
                profile: profile(["H100", "A100", "T4"][(c % 3) as usize], 16_000 * u64::from(c % 6)),
            },
            5 | 6 => {
                let mut spec = auction_spec(&format!("{}", 1 + b % 20), policy(c));
                if c % 7 == 0 {
                    spec.deadline_blocks = 0;
                }
                if let (Some(pool), true) = (Self::pick(&self.pools, b), c % 4 == 0) {
                    spec.market = Market::Pool { pool };
                    spec.verification = VerificationPolicy::None;
                    spec.workload.kind = WorkloadKind::Onnx;
                }
                let tx = self.net.tx(&key, TxBody::SubmitTask { spec });
                self.tasks.push(TaskId(tx.hash()));
                return Some(tx);
            }
            7 => {
                let task = task?;
                let price = Amount::from_base_units(u128::from(c) * 10u128.pow(17));
                self.bids.insert((task, who), price);
                return Some(self.net.commit_bid(&key, task, &price.to_string()));
            }
            8 => {
                let task = task?;
                let price = self.bids.get(&(task, who)).copied().unwrap_or(amount);
                return Some(self.net.reveal_bid(&key, task, &price.to_string()));
            }
            9 => TxBody::StartTask { task: task? },
            10 => return Some(self.net.commit_result(&key, task?, claim)),
            11 => return Some(self.net.reveal_result(&key, task?, claim)),
            12 => TxBody::CancelTask { task: task? },
            13 => {
                let report = VerificationReport {
                    subject: addr(&self.actors[other]),
                    pass: c % 2 == 0,
                    distance_ppm: u32::from(c) * 100,
                };
                TxBody::Report { task: task?, report }
            }
            14 => TxBody::Challenge { task: task?, bond: amount },
            15 => {
                let spec = PoolSpec {
                    name: "pool".into(),
                    kind: WorkloadKind::Onnx,
                    model: BlobHash(Hash::ZERO),
                    price_per_job: Amount::from_base_units(u128::from(c) * 10u128.pow(17)),
                    verification_rate: Ratio(u32::from(c) * 4_000),
                    min_stake: ogpu("1"),
                };
                let tx = self.net.tx(&key, TxBody::CreatePool { spec });
                self.pools.push(PoolId(tx.hash()));
                return Some(tx);
            }
            16 => TxBody::JoinPool { pool: Self::pick(&self.pools, b)?, stake: amount },
            17 => TxBody::LeavePool { pool: Self::pick(&self.pools, b)? },
            18 => {
                let change = ParamChange { key: ParamKey::FaultSlashBps, value: u128::from(c) * 50 };
                let tx = self.net.tx(&key, TxBody::Propose { change });
                self.proposals.push(ProposalId(tx.hash()));
                return Some(tx);
            }
            _ => {
                let mut tx =
                    self.net.tx(&key, TxBody::Vote { proposal: Self::pick(&self.proposals, b)?, approve: c % 2 == 0 });
                match c % 4 {
                    0 => tx.signature.0[0] ^= 1,
                    1 => tx.nonce += 1 + u64::from(c),
                    _ => {}
                }
                return Some(tx);
            }
        };
        Some(self.net.tx(&key, body))
    }
}

fn ops() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec((any::<u8>(), any::<u64>(), any::<u64>(), any::<u8>()), 0..6), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_conserve_money_and_replay_deterministically(blocks in ops()) {
        let mut world = World::new();
        // The validator stakes so that validator operations have something to act on.
        let validator = world.net.validator.clone();
        let _ = &validator;
        for ops in blocks {
            // Transactions in one block come from distinct senders so nonces line up.
            let mut senders = std::collections::HashSet::new();
            let txs: Vec<_> = ops
                .into_iter()
                .filter(|(_, a, _, _)| senders.insert(a % 6))
                .filter_map(|op| world.tx(op))
                .collect();
            world.net.block(txs);
        }
        let state = &world.net.state;
        prop_assert!(state.supply.minted <= SUPPLY_CAP);
        prop_assert_eq!(state.money_held(), state.supply.minted.checked_sub(state.supply.burned));
    }
}

#[test]
fn block_rewards_stop_exactly_at_the_supply_cap() {
    let rich = key("rich");
    let params = Params { initial_block_reward: Amount::ogpu(400_000), halving_blocks: 1_000_000, ..test_params() };
    let mut net = Net::with_params(&[(&rich, "19000000")], params);
    for _ in 0..10 {
        net.advance(1);
        assert!(net.state.supply.minted <= SUPPLY_CAP);
    }
    assert_eq!(net.state.supply.minted, SUPPLY_CAP, "19M + 10k staked + rewards fill the cap and stop there");
}
