//! A test chain: a genesis with one validator and funded accounts, blocks proposed and
//! applied the way a node does, and the money invariants checked after every block.
#![allow(dead_code)]

use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_chain::params::SUPPLY_CAP;
use ogpu_chain::state::Phase;
use ogpu_chain::{BlockOutcome, Event, Genesis, Params, State, TxError, apply_block, propose_block};
use ogpu_core::spec::{
    Device, DeviceKind, DeviceProfile, Limits, Market, PoolSpec, Ratio, Requirements, TaskSpec, VerificationPolicy,
    Workload, WorkloadKind,
};
use ogpu_core::tx::{ResultClaim, StakeRole, Transaction, TxBody, bid_commitment, result_commitment};
use ogpu_core::{Address, Amount, BlobHash, Hash, SecretKey, TaskId};

pub fn key(name: &str) -> SecretKey {
    SecretKey::from_name(name)
}

pub fn addr(key: &SecretKey) -> Address {
    Address::of(&key.public())
}

pub fn ogpu(text: &str) -> Amount {
    text.parse().unwrap()
}

/// Small windows and round numbers, so scenarios are short and balances easy to check.
pub fn test_params() -> Params {
    Params {
        initial_block_reward: Amount::ZERO,
        min_fee: ogpu("0.001"),
        min_validator_stake: ogpu("1000"),
        min_provider_stake: ogpu("100"),
        unbonding_blocks: 10,
        epoch_blocks: 1_000,
        jail_blocks: 50,
        bid_reveal_blocks: 1,
        start_timeout_blocks: 3,
        result_reveal_blocks: 2,
        verify_blocks: 3,
        challenge_blocks: 2,
        pool_commit_blocks: 1,
        voting_blocks: 5,
        ..Params::default()
    }
}

pub struct Net {
    pub state: State,
    pub validator: SecretKey,
    pub time_ms: u64,
    pub last: BlockOutcome,
}

impl Net {
    pub fn new(funded: &[(&SecretKey, &str)]) -> Net {
        Net::with_params(funded, test_params())
    }

    pub fn with_params(funded: &[(&SecretKey, &str)], params: Params) -> Net {
        let validator = key("validator");
        let genesis = Genesis {
            chain_id: "ogpu-test".parse().unwrap(),
            genesis_time_ms: 1_000,
            params,
            allocations: funded
                .iter()
                .map(|(k, amount)| Allocation { address: addr(k), amount: ogpu(amount) })
                .collect(),
            validators: vec![GenesisValidator { public_key: validator.public(), stake: ogpu("10000") }],
        };
        Net { state: genesis.into_state().unwrap(), validator, time_ms: 1_000, last: BlockOutcome::default() }
    }

    pub fn height(&self) -> u64 {
        self.state.height
    }

    pub fn fee(&self) -> Amount {
        self.state.params.min_fee
    }

    /// A transaction from `key` with its next nonce and the minimum fee.
    pub fn tx(&self, key: &SecretKey, body: TxBody) -> Transaction {
        let nonce = self.state.account(&addr(key)).nonce;
        Transaction::sign(key, self.state.chain_id.clone(), nonce, self.fee(), body)
    }

    /// Proposes a block with `txs`, applies it as a validating node would, checks that both
    /// agree and that the invariants hold, and moves on to it.
    pub fn block(&mut self, txs: Vec<Transaction>) -> BlockOutcome {
        self.time_ms += 500;
        let (block, proposed, outcome) = propose_block(&self.state, &self.validator, self.time_ms, txs).unwrap();
        let (applied, replayed) = apply_block(&self.state, &block).unwrap();
        assert_eq!(applied.root(), proposed.root());
        assert_eq!(replayed, outcome);
        let (again, _) = apply_block(&self.state, &block).unwrap();
        assert_eq!(again.root(), applied.root(), "applying a block twice to one state gives one root");
        check_invariants(&applied);
        self.state = applied;
        self.last = outcome.clone();
        outcome
    }

    /// Runs one transaction in its own block and returns its result.
    pub fn run(&mut self, key: &SecretKey, body: TxBody) -> Result<(), TxError> {
        let tx = self.tx(key, body);
        self.block(vec![tx]).receipts[0].result.clone()
    }

    pub fn ok(&mut self, key: &SecretKey, body: TxBody) {
        let what = format!("{body:?}");
        if let Err(e) = self.run(key, body) {
            panic!("{what} failed: {e}");
        }
    }

    pub fn advance(&mut self, blocks: u64) {
        for _ in 0..blocks {
            self.block(vec![]);
        }
    }

    pub fn advance_to(&mut self, height: u64) {
        while self.height() < height {
            self.block(vec![]);
        }
    }

    pub fn balance(&self, key: &SecretKey) -> Amount {
        self.state.balance(&addr(key))
    }

    pub fn events(&self) -> &[Event] {
        &self.last.events
    }

    /// Registers a provider with one GPU and stakes `stake`.
    pub fn provider(&mut self, key: &SecretKey, gpu: &str, memory_mb: u64, stake: &str) {
        self.ok(key, TxBody::RegisterProvider { profile: profile(gpu, memory_mb) });
        self.ok(key, TxBody::Stake { role: StakeRole::Provider, amount: ogpu(stake) });
    }

    pub fn submit(&mut self, client: &SecretKey, spec: TaskSpec) -> TaskId {
        let tx = self.tx(client, TxBody::SubmitTask { spec });
        let id = TaskId(tx.hash());
        let receipt = &self.block(vec![tx]).receipts[0];
        assert_eq!(receipt.result, Ok(()), "submit");
        id
    }

    pub fn commit_bid(&self, bidder: &SecretKey, task: TaskId, price: &str) -> Transaction {
        let commitment = bid_commitment(&task, &addr(bidder), ogpu(price), &salt(bidder));
        self.tx(bidder, TxBody::CommitBid { task, commitment })
    }

    pub fn reveal_bid(&self, bidder: &SecretKey, task: TaskId, price: &str) -> Transaction {
        self.tx(bidder, TxBody::RevealBid { task, price: ogpu(price), salt: salt(bidder) })
    }

    pub fn commit_result(&self, provider: &SecretKey, task: TaskId, claim: ResultClaim) -> Transaction {
        let commitment = result_commitment(&task, &addr(provider), &claim, &salt(provider));
        self.tx(provider, TxBody::CommitResult { task, commitment })
    }

    pub fn reveal_result(&self, provider: &SecretKey, task: TaskId, claim: ResultClaim) -> Transaction {
        self.tx(provider, TxBody::RevealResult { task, claim, salt: salt(provider), sealed: None })
    }

    /// The reveal of a private task's result, with the index of its sealed copy.
    pub fn reveal_sealed(&self, provider: &SecretKey, task: TaskId, claim: ResultClaim) -> Transaction {
        let sealed = Some(sealed_index(provider));
        self.tx(provider, TxBody::RevealResult { task, claim, salt: salt(provider), sealed })
    }

    /// Runs bids through the commit and reveal windows up to the award.
    pub fn auction(&mut self, task: TaskId, bids: &[(&SecretKey, &str)]) {
        let commits = bids.iter().map(|(k, p)| self.commit_bid(k, task, p)).collect();
        let receipts = self.block(commits).receipts;
        assert!(receipts.iter().all(|r| r.result.is_ok()), "commits: {receipts:?}");
        let Phase::Bidding { commit_end, .. } = self.task(task).phase else { panic!("not bidding") };
        self.advance_to(commit_end);
        let reveals = bids.iter().map(|(k, p)| self.reveal_bid(k, task, p)).collect();
        let receipts = self.block(reveals).receipts;
        assert!(receipts.iter().all(|r| r.result.is_ok()), "reveals: {receipts:?}");
        assert!(matches!(self.task(task).phase, Phase::Executing), "awarded: {:?}", self.task(task).phase);
    }

    pub fn task(&self, id: TaskId) -> ogpu_chain::state::Task {
        self.state.tasks.get(&id).cloned().unwrap()
    }
}

/// Where `provider`'s sealed copy of a private result lies, in these tests.
pub fn sealed_index(provider: &SecretKey) -> BlobHash {
    BlobHash(Hash::tagged("test-sealed-index", &[&provider.public().0]))
}

pub fn salt(key: &SecretKey) -> Hash {
    Hash::tagged("test-salt", &[&key.public().0])
}

pub fn claim(output: &str) -> ResultClaim {
    ResultClaim { output: Hash::of_bytes(output.as_bytes()), trace: None }
}

pub fn profile(gpu: &str, memory_mb: u64) -> DeviceProfile {
    DeviceProfile {
        devices: vec![Device { kind: DeviceKind::Gpu, model: gpu.into(), memory_mb, gflops: 50_000 }],
        region: "eu-west".into(),
        reader: None,
    }
}

pub fn auction_spec(max_price: &str, verification: VerificationPolicy) -> TaskSpec {
    TaskSpec {
        name: "test-task".into(),
        workload: Workload {
            kind: WorkloadKind::Train,
            program: BlobHash(Hash::of_bytes(b"program")),
            inputs: Default::default(),
            args: vec![],
            env: Default::default(),
            training: None,
            limits: Limits::default(),
        },
        market: Market::Auction { max_price: ogpu(max_price), bid_window: 2 },
        requirements: Requirements { gpus: 1, min_vram_mb: 16_000, models: vec![], min_reputation: 0 },
        deadline_blocks: 10,
        verification,
        private: None,
    }
}

/// An onnx pool paying 1 oGPU a job, never verifying, open to members staking `min_stake`.
pub fn pool_spec(min_stake: Amount) -> PoolSpec {
    PoolSpec {
        name: "embeddings".into(),
        kind: WorkloadKind::Onnx,
        model: BlobHash(Hash::of_bytes(b"model")),
        price_per_job: ogpu("1"),
        verification_rate: Ratio(0),
        min_stake,
    }
}

/// Money is conserved, the supply is under the cap, and the timers match the tasks.
pub fn check_invariants(state: &State) {
    let held = state.money_held().expect("money held overflows");
    let outstanding = state.supply.minted.checked_sub(state.supply.burned).expect("burned more than minted");
    assert_eq!(held, outstanding, "money held equals minted minus burned at height {}", state.height);
    assert!(state.supply.minted <= SUPPLY_CAP, "supply exceeds the cap");
    for (id, task) in state.tasks.iter() {
        if let Some(due) = task.due {
            assert!(state.timers.contains(&(due, *id)), "task {id:?} has a timer");
        }
    }
    assert_eq!(state.timers.len(), state.tasks.values().filter(|t| t.due.is_some()).count());
}
