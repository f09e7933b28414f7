//! The whole state as bytes, for nodes that persist it: a snapshot lets a restarted node
//! resume without replaying the chain from genesis. Decoding rebuilds the maps; callers
//! check the result against a block's state root before trusting it.

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_core::encoding::{DecodeError, decode_bounded};
use ogpu_core::{Address, Amount, ChainId, Hash, PoolId, ProposalId, PublicKey, TaskId};

use crate::params::Params;
use crate::state::{Account, Pool, Proposal, Provider, State, Supply, Task, Unbonding, Validator};

/// Snapshots larger than this are refused when decoding.
pub const MAX_SNAPSHOT_LEN: usize = 1 << 30;

#[derive(BorshSerialize, BorshDeserialize)]
struct Snapshot {
    chain_id: ChainId,
    height: u64,
    last_block: Hash,
    randomness: Hash,
    time_ms: u64,
    params: Params,
    supply: Supply,
    reward_pool: Amount,
    next_unbonding: u64,
    accounts: Vec<(Address, Account)>,
    validators: Vec<(Address, Validator)>,
    active_set: Vec<(Address, (PublicKey, Amount))>,
    providers: Vec<(Address, Provider)>,
    unbonding: Vec<((Address, u64), Unbonding)>,
    pools: Vec<(PoolId, Pool)>,
    tasks: Vec<(TaskId, Task)>,
    timers: Vec<(u64, TaskId)>,
    proposals: Vec<(ProposalId, Proposal)>,
    punished: Vec<(PublicKey, u64)>,
}

fn entries<K: Clone + Ord, V: Clone>(map: &imbl::OrdMap<K, V>) -> Vec<(K, V)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl State {
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let snapshot = Snapshot {
            chain_id: self.chain_id.clone(),
            height: self.height,
            last_block: self.last_block,
            randomness: self.randomness,
            time_ms: self.time_ms,
            params: self.params.clone(),
            supply: self.supply,
            reward_pool: self.reward_pool,
            next_unbonding: self.next_unbonding,
            accounts: entries(&self.accounts),
            validators: entries(&self.validators),
            active_set: entries(&self.active_set),
            providers: entries(&self.providers),
            unbonding: entries(&self.unbonding),
            pools: entries(&self.pools),
            tasks: entries(&self.tasks),
            timers: self.timers.iter().copied().collect(),
            proposals: entries(&self.proposals),
            punished: self.punished.iter().copied().collect(),
        };
        borsh::to_vec(&snapshot).expect("writing to a Vec cannot fail")
    }

    pub fn decode_snapshot(bytes: &[u8]) -> Result<State, DecodeError> {
        let s: Snapshot = decode_bounded(bytes, MAX_SNAPSHOT_LEN)?;
        Ok(State {
            chain_id: s.chain_id,
            height: s.height,
            last_block: s.last_block,
            randomness: s.randomness,
            time_ms: s.time_ms,
            params: s.params,
            supply: s.supply,
            reward_pool: s.reward_pool,
            next_unbonding: s.next_unbonding,
            accounts: s.accounts.into_iter().collect(),
            validators: s.validators.into_iter().collect(),
            active_set: s.active_set.into_iter().collect(),
            providers: s.providers.into_iter().collect(),
            unbonding: s.unbonding.into_iter().collect(),
            pools: s.pools.into_iter().collect(),
            tasks: s.tasks.into_iter().collect(),
            timers: s.timers.into_iter().collect(),
            proposals: s.proposals.into_iter().collect(),
            punished: s.punished.into_iter().collect(),
        })
    }
}
