//! Replicas wired together in one process over a simulated network with virtual time:
//! transfers submitted to one replica are finalized by all with equal state roots, and a
//! replica restarted from its store catches up.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_chain::{Genesis, Params};
use ogpu_consensus::{Message, Params as ConsensusParams};
use ogpu_core::encoding::Canonical;
use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount, SecretKey};
use ogpu_node::mempool::MempoolConfig;
use ogpu_node::replica::{Action, Replica, WireMessage};
use ogpu_node::store::Store;

const VALIDATORS: usize = 4;
const LATENCY_MS: u64 = 5;

fn keys() -> Vec<SecretKey> {
    (0..VALIDATORS).map(|i| SecretKey::from_name(&format!("validator-{i}"))).collect()
}

fn client() -> SecretKey {
    SecretKey::from_name("client")
}

fn genesis() -> Genesis {
    genesis_with(Params::default())
}

fn genesis_with(params: Params) -> Genesis {
    Genesis {
        chain_id: "ogpu-test".parse().unwrap(),
        genesis_time_ms: 0,
        params,
        allocations: vec![Allocation { address: Address::of(&client().public()), amount: Amount::ogpu(1_000) }],
        validators: keys()
            .iter()
            .map(|k| GenesisValidator { public_key: k.public(), stake: Amount::ogpu(10_000) })
            .collect(),
    }
}

fn consensus() -> ConsensusParams {
    ConsensusParams {
        k: 4,
        alpha_pref: 3,
        alpha_conf: 3,
        beta: 4,
        concurrent_polls: 2,
        poll_timeout_ms: 100,
        proposer_window_ms: 200,
        proposer_slots: 2,
        min_block_interval_ms: 0,
        clock_drift_ms: 2_000,
    }
}

struct Net {
    dir: tempfile::TempDir,
    replicas: Vec<Option<Replica>>,
    addresses: Vec<Address>,
    queue: BinaryHeap<Reverse<(u64, u64, usize, Event)>>,
    seq: u64,
    now: u64,
    params: ConsensusParams,
    genesis: Genesis,
    /// Everything each replica sent, in order.
    sent: Vec<(usize, WireMessage)>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Deliver { from: usize, bytes: Vec<u8> },
    Tick,
}

impl Net {
    fn new() -> Net {
        Net::with(consensus())
    }

    fn with(params: ConsensusParams) -> Net {
        Net::with_genesis(params, genesis())
    }

    fn with_genesis(params: ConsensusParams, genesis: Genesis) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let mut net = Net {
            dir,
            replicas: (0..VALIDATORS).map(|_| None).collect(),
            addresses: keys().iter().map(|k| Address::of(&k.public())).collect(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            params,
            genesis,
            sent: Vec::new(),
        };
        for i in 0..VALIDATORS {
            net.start(i);
        }
        net
    }

    fn start(&mut self, i: usize) {
        let store = Arc::new(Store::open(&self.dir.path().join(format!("{i}.redb")), &self.genesis, 5).unwrap());
        let state = store.load(self.genesis.clone()).unwrap();
        let (replica, actions) =
            Replica::new(keys()[i].clone(), store, state, self.params, MempoolConfig::default(), self.now).unwrap();
        self.replicas[i] = Some(replica);
        self.apply(i, actions);
    }

    fn stop(&mut self, i: usize) {
        self.replicas[i] = None;
    }

    /// The height replica `i`, stopped, had finalized.
    fn stored_height(&self, i: usize) -> u64 {
        let path = self.dir.path().join(format!("{i}.redb"));
        Store::open(&path, &self.genesis, 5).unwrap().finalized_height().unwrap()
    }

    fn push(&mut self, at: u64, to: usize, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, to, event)));
    }

    fn apply(&mut self, from: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    self.sent.push((from, message.clone()));
                    if let Some(to) = self.addresses.iter().position(|a| *a == to) {
                        self.push(self.now + LATENCY_MS, to, Event::Deliver { from, bytes: message.encode() });
                    }
                }
                Action::Broadcast(message) => {
                    self.sent.push((from, message.clone()));
                    let bytes = message.encode();
                    for to in (0..VALIDATORS).filter(|to| *to != from) {
                        self.push(self.now + LATENCY_MS, to, Event::Deliver { from, bytes: bytes.clone() });
                    }
                }
                Action::SetTimer { at_ms } => self.push(at_ms.max(self.now), from, Event::Tick),
                Action::Finalized { .. } => {}
                Action::Fatal(error) => panic!("replica {from} stopped: {error}"),
            }
        }
    }

    /// Runs the network until `until_ms` of virtual time.
    fn run_until(&mut self, until_ms: u64) {
        while let Some(Reverse((at, _, to, _))) = self.queue.peek() {
            if *at > until_ms {
                break;
            }
            let (at, to) = (*at, *to);
            let Reverse((_, _, _, event)) = self.queue.pop().unwrap();
            self.now = at;
            let from_address = |from: usize| self.addresses[from];
            let actions = match (&mut self.replicas[to], event) {
                (Some(replica), Event::Deliver { from, bytes }) => {
                    replica.receive(at, from_address(from), &bytes).unwrap()
                }
                (Some(replica), Event::Tick) => replica.tick(at),
                (None, _) => vec![],
            };
            self.apply(to, actions);
        }
        self.now = until_ms;
    }

    fn replica(&self, i: usize) -> &Replica {
        self.replicas[i].as_ref().unwrap()
    }

    fn submit(&mut self, to: usize, tx: Transaction) {
        let (verdicts, actions) = self.replicas[to].as_mut().unwrap().submit(vec![tx]);
        assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
        self.apply(to, actions);
    }
}

fn transfer(nonce: u64) -> Transaction {
    let body = TxBody::Transfer { to: Address([9; 20]), amount: Amount::ogpu(1) };
    Transaction::sign(&client(), "ogpu-test".parse().unwrap(), nonce, Params::default().min_fee, body)
}

#[test]
fn transfers_submitted_to_one_replica_are_finalized_by_all_with_one_state_root() {
    let mut net = Net::new();
    for nonce in 0..20 {
        net.submit(0, transfer(nonce));
    }
    net.run_until(5_000);
    let roots: BTreeMap<u64, Vec<_>> = (0..VALIDATORS)
        .map(|i| (net.replica(i).finalized().height, net.replica(i).finalized().root()))
        .fold(BTreeMap::new(), |mut m, (h, r)| {
            m.entry(h).or_insert_with(Vec::new).push(r);
            m
        });
    assert!(net.replica(0).finalized().height >= 3, "blocks are finalized: {roots:?}");
    for i in 0..VALIDATORS {
        let state = net.replica(i).finalized();
        assert_eq!(state.balance(&Address([9; 20])), Amount::ogpu(20), "replica {i} has every transfer");
    }
    let common = (0..VALIDATORS).map(|i| net.replica(i).finalized().height).min().unwrap();
    let at_common: Vec<_> =
        (0..VALIDATORS).map(|i| net.replica(i).store().block(common).unwrap().unwrap().header().state_root).collect();
    assert!(at_common.windows(2).all(|w| w[0] == w[1]), "one state root at height {common}");
}

/// The times of replica 0's finalized blocks after genesis.
fn block_times(net: &Net) -> Vec<u64> {
    let store = net.replica(0).store();
    (1..=net.replica(0).finalized().height).map(|h| store.block(h).unwrap().unwrap().header().time_ms).collect()
}

#[test]
fn a_minimum_block_interval_paces_an_idle_chain() {
    let mut fast = Net::new();
    fast.run_until(6_000);
    let mut paced = Net::with(ConsensusParams { min_block_interval_ms: 500, ..consensus() });
    paced.run_until(6_000);
    let (fast, paced) = (block_times(&fast), block_times(&paced));
    assert!(paced.windows(2).all(|w| w[1] - w[0] >= 500), "{paced:?}");
    assert!(paced.len() >= 6, "the paced chain still moves: {paced:?}");
    assert!(fast.len() > 2 * paced.len(), "without it blocks come faster: {} vs {}", fast.len(), paced.len());
}

#[test]
fn a_replica_restarted_from_its_store_catches_up() {
    let mut net = Net::new();
    net.run_until(1_000);
    net.stop(3);
    for nonce in 0..5 {
        net.submit(0, transfer(nonce));
    }
    net.run_until(3_000);
    let stopped_at = net.stored_height(3);
    net.start(3);
    net.run_until(8_000);
    let leader = net.replica(0).finalized().height;
    let restarted = net.replica(3).finalized();
    assert!(restarted.height > stopped_at, "the restarted replica moved on from {stopped_at}");
    assert!(
        restarted.height + 3 >= leader,
        "it is within a few blocks of the others ({} vs {leader})",
        restarted.height
    );
    assert_eq!(restarted.balance(&Address([9; 20])), Amount::ogpu(5));
}

/// A replica stopped in one epoch and restarted in a later one (same validators, another
/// epoch number) catches up: queries are answered whatever epoch they name. Dropping
/// them left a replica behind at a boundary unheard and deaf for good.
#[test]
fn a_replica_restarted_in_a_later_epoch_catches_up() {
    let mut net = Net::with_genesis(consensus(), genesis_with(Params { epoch_blocks: 4, ..Params::default() }));
    net.run_until(1_000);
    net.stop(3);
    net.run_until(3_000);
    let stopped_at = net.stored_height(3);
    let leader = net.replica(0).finalized().height;
    assert!(leader / 4 > stopped_at / 4, "the others went on into a later epoch: {stopped_at} vs {leader}");
    net.start(3);
    net.run_until(8_000);
    let (leader, restarted) = (net.replica(0).finalized().height, net.replica(3).finalized().height);
    assert!(restarted > stopped_at, "the restarted replica moved on from {stopped_at}");
    assert!(restarted + 3 >= leader, "it is within a few blocks of the others ({restarted} vs {leader})");
}

/// Finding 16 (and 1 across a restart): a validator killed and restarted within its
/// proposer slot, or between two identical questions, must sign nothing twice: no second
/// header at a height, no second answer to a poll.
#[test]
fn a_validator_restarted_mid_slot_signs_nothing_twice() {
    let mut net = Net::new();
    let victim = 1;
    let headers_by = |net: &Net| -> Vec<ogpu_core::block::SignedHeader> {
        net.sent
            .iter()
            .filter(|(from, _)| *from == victim)
            .filter_map(|(_, message)| match message {
                WireMessage::Block(block) => Some(block.signed.clone()),
                WireMessage::Consensus(Message::Propose(header)) => Some(header.clone()),
                _ => None,
            })
            .collect()
    };
    // Run until the victim has proposed, then kill it at once and bring it back.
    let mut restarts = 0;
    while net.now < 10_000 && restarts < 3 {
        let before = headers_by(&net).len();
        net.run_until(net.now + 10);
        if headers_by(&net).len() > before {
            net.stop(victim);
            net.start(victim);
            restarts += 1;
        }
    }
    assert!(restarts > 0, "the victim proposed");
    // Ask the restarted victim every question it answered before, again.
    let queries: Vec<(usize, WireMessage)> =
        net.sent.iter().filter(|(_, m)| matches!(m, WireMessage::Consensus(Message::Query { .. }))).cloned().collect();
    for (from, query) in queries {
        let from_address = net.addresses[from];
        let actions = net.replicas[victim].as_mut().unwrap().on_message(net.now, from_address, query);
        net.apply(victim, actions);
    }
    net.run_until(net.now + 2_000);

    let mut by_height: BTreeMap<u64, ogpu_core::Hash> = BTreeMap::new();
    for header in headers_by(&net) {
        let hash = header.header.hash();
        let first = *by_height.entry(header.header.height).or_insert(hash);
        assert_eq!(first, hash, "two headers signed at height {}", header.header.height);
    }
    let chits: Vec<ogpu_core::vote::SignedChit> = net
        .sent
        .iter()
        .filter(|(from, _)| *from == victim)
        .filter_map(|(_, m)| match m {
            WireMessage::Consensus(Message::Chit(chit)) => Some(chit.clone()),
            _ => None,
        })
        .collect();
    let chain = genesis().chain_id;
    for (i, a) in chits.iter().enumerate() {
        for b in &chits[i + 1..] {
            let evidence = ogpu_core::vote::Evidence::DoubleChit(a.clone(), b.clone());
            assert!(evidence.check(&chain).is_err(), "two answers signed to one poll: {a:?} {b:?}");
        }
    }
}

/// Finding 4: a peer's blocks are held only when a validator of this chain signed the
/// header and the transactions match its `tx_root`, and they go when their height is
/// finalized; a flood of junk holds nothing.
#[test]
fn junk_blocks_from_a_peer_are_not_held() {
    let mut net = Net::new();
    net.run_until(1_000);
    let state = net.replica(0).finalized().clone();
    let height = state.height + 1;
    let block = |signer: &SecretKey, txs: Vec<Transaction>| {
        ogpu_chain::propose_block(&state, signer, state.time_ms + 1, txs).map(|(b, ..)| b)
    };
    let stranger = block(&SecretKey::from_name("stranger"), vec![]).unwrap();
    let mut swapped = block(&keys()[1], vec![transfer(0)]).unwrap();
    swapped.txs = vec![transfer(1)];
    let mut replayed = block(&keys()[1], vec![]).unwrap();
    replayed.signed.header.chain_id = "ogpu-other".parse().unwrap();
    let stranger_address = Address::of(&SecretKey::from_name("stranger").public());
    for junk in [stranger, swapped, replayed] {
        let actions = net.replicas[0].as_mut().unwrap().on_message(net.now, stranger_address, WireMessage::Block(junk));
        net.apply(0, actions);
    }
    assert_eq!(net.replica(0).held_bodies(), 0, "junk blocks held at height {height}");
    net.run_until(3_000);
    assert!(net.replica(0).finalized().height > height, "the replica keeps finalizing");
}
