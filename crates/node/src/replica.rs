//! A replica of the chain: the consensus engine, the chain rules, the mempool and the
//! store wired together, without the network. It takes what peers and clients send and
//! the time, and returns what to send; the network layer only carries bytes.
//!
//! Consensus decides on headers; full blocks travel beside them. A proposer broadcasts
//! its whole block; a replica executes a block on its parent's state before telling the
//! engine it is valid, keeps the resulting state per processing block, and on acceptance
//! commits block and state to the store and prunes the mempool.

use std::collections::BTreeMap;
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_chain::{BlockOutcome, MAX_TXS_PER_BLOCK, State, apply_block_with, next_block_time, propose_block_with};
use ogpu_consensus::{Engine, Genesis as ConsensusGenesis, Input, Message, Output, Params, ValidatorSet};
use ogpu_core::block::tx_root;
use ogpu_core::encoding::{Canonical, DecodeError};
use ogpu_core::tx::{Transaction, verify_signatures};
use ogpu_core::{Address, Block, Hash, SecretKey};

use crate::mempool::{Mempool, MempoolConfig, Rejection};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid consensus parameters: {0}")]
    Params(#[from] ogpu_consensus::ParamsError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Everything replicas say to each other.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WireMessage {
    Consensus(Message),
    /// A whole block, from its proposer or in answer to `GetBlock`.
    Block(Block),
    GetBlock(Hash),
    /// Transactions a node admitted, relayed together so that gossip costs one signed
    /// message per batch rather than per transaction.
    Txs(Vec<Transaction>),
}

impl Canonical for WireMessage {
    const MAX_ENCODED_LEN: usize = Block::MAX_ENCODED_LEN + 64;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        to: Address,
        message: WireMessage,
    },
    Broadcast(WireMessage),
    SetTimer {
        at_ms: u64,
    },
    /// A block was finalized and committed.
    Finalized(Box<Finalized>),
    /// The replica cannot go on (its store failed); the node must stop.
    Fatal(String),
}

/// A finalized block and what it produced: what the API's feed and indexes show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    pub block: Block,
    pub outcome: BlockOutcome,
}

/// Transactions one gossiped message may carry; a peer that sends more is at fault.
pub const MAX_GOSSIP_TXS: usize = 1_000;

/// Blocks built per block at most.
const MAX_BLOCK_TXS: usize = 10_000;
/// Bodies held for the engine before it asks for them: at most this many, of this many
/// bytes in all, for this long.
const BODIES_HELD: usize = 256;
const BODY_BYTES_HELD: usize = 256 << 20;
const BODY_TTL_MS: u64 = 60_000;
/// Bodies the engine is waiting for at most.
const BODIES_AWAITED: usize = 64;

/// A block body that arrived before the engine asked to verify it.
struct Held {
    block: Block,
    bytes: usize,
    received_ms: u64,
}

pub struct Replica {
    engine: Engine,
    key: SecretKey,
    store: Arc<Store>,
    mempool: Mempool,
    finalized: State,
    /// Verified blocks not yet decided, with the state after each and what each produced.
    processing: BTreeMap<Hash, (Block, State, BlockOutcome)>,
    /// Blocks received and not yet verified.
    bodies: BTreeMap<Hash, Held>,
    body_bytes: usize,
    /// Blocks the engine asked to verify whose bodies have not arrived yet, with their
    /// heights.
    awaiting: BTreeMap<Hash, u64>,
    /// Transactions in the blocks this replica finalized since it started.
    finalized_txs: u64,
}

fn validator_set(state: &State) -> ValidatorSet {
    let epoch = state.height / state.params.epoch_blocks.max(1);
    ValidatorSet::new(epoch, state.active_set.values().map(|(key, stake)| (*key, stake.base_units())))
}

impl Replica {
    /// A replica resuming from `store` (at genesis on first start).
    pub fn new(
        key: SecretKey,
        store: Arc<Store>,
        state: State,
        params: Params,
        mempool: MempoolConfig,
        now_ms: u64,
    ) -> Result<(Replica, Vec<Action>), StartError> {
        let start = ConsensusGenesis { hash: state.last_block, height: state.height, randomness: state.randomness };
        let seed = Hash::tagged("ogpu/replica-seed", &[&key.seed()[..], &now_ms.to_le_bytes()]);
        let mut engine = Engine::new(params, state.chain_id.clone(), key.clone(), validator_set(&state), start, seed)?;
        let outputs = engine.start(now_ms, store.signing_record()?);
        let mut replica = Replica {
            engine,
            key,
            store,
            mempool: Mempool::new(mempool),
            finalized: state,
            processing: BTreeMap::new(),
            bodies: BTreeMap::new(),
            body_bytes: 0,
            awaiting: BTreeMap::new(),
            finalized_txs: 0,
        };
        let actions = replica.run(now_ms, outputs);
        Ok((replica, actions))
    }

    pub fn finalized(&self) -> &State {
        &self.finalized
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn finalized_txs(&self) -> u64 {
        self.finalized_txs
    }

    pub fn is_pending(&self, tx: &Hash) -> bool {
        self.mempool.contains(tx)
    }

    pub fn mempool_len(&self) -> usize {
        self.mempool.len()
    }

    /// Block bodies held for the engine, and how many bytes of transactions they carry.
    pub fn held_bodies(&self) -> usize {
        self.bodies.len()
    }

    /// Transactions from a client: each admitted to the mempool or refused with a reason;
    /// those admitted are gossiped, [`MAX_GOSSIP_TXS`] to a message.
    pub fn submit(&mut self, txs: Vec<Transaction>) -> (Vec<Result<Hash, Rejection>>, Vec<Action>) {
        let signatures = verify_signatures(&txs.iter().collect::<Vec<_>>());
        self.submit_verified(txs, &signatures)
    }

    /// [`Self::submit`] for transactions whose signatures were checked off the node's task:
    /// `signatures[i]` says whether `txs[i]`'s verified.
    pub fn submit_verified(
        &mut self,
        txs: Vec<Transaction>,
        signatures: &[bool],
    ) -> (Vec<Result<Hash, Rejection>>, Vec<Action>) {
        let verdicts = self.mempool.insert_verified(txs.clone(), signatures, &self.finalized);
        let admitted: Vec<Transaction> =
            txs.into_iter().zip(&verdicts).filter(|(_, verdict)| verdict.is_ok()).map(|(tx, _)| tx).collect();
        let actions =
            admitted.chunks(MAX_GOSSIP_TXS).map(|chunk| Action::Broadcast(WireMessage::Txs(chunk.to_vec()))).collect();
        (verdicts, actions)
    }

    /// Transactions a peer relayed, whose signatures were checked and all verified: admitted
    /// quietly, since a stale or unaffordable one is no fault of the relay.
    pub fn admit_relayed(&mut self, txs: Vec<Transaction>, signatures: &[bool]) {
        let _ = self.mempool.insert_verified(txs, signatures, &self.finalized);
    }

    /// Bytes from a peer. What does not decode is an error the network layer holds against
    /// the peer; what decodes but does not check out is dropped quietly.
    pub fn receive(&mut self, now_ms: u64, from: Address, bytes: &[u8]) -> Result<Vec<Action>, DecodeError> {
        Ok(self.on_message(now_ms, from, WireMessage::decode(bytes)?))
    }

    pub fn on_message(&mut self, now_ms: u64, from: Address, message: WireMessage) -> Vec<Action> {
        match message {
            WireMessage::Consensus(Message::GetHeader { .. }) | WireMessage::GetBlock(_) => {
                // Undecided blocks are in memory; finalized ones come from the store, so a
                // replica that fell behind can walk back to where it stopped.
                let (actions, answered) = self.answer_from_memory(now_ms, from, &message);
                if answered {
                    return actions;
                }
                let answer = Replica::answer_from_store(&self.store, &message).into_iter();
                actions.into_iter().chain(answer.map(|message| Action::Send { to: from, message })).collect()
            }
            WireMessage::Consensus(message) => {
                let outputs = self.engine.handle(now_ms, Input::Message { from, message });
                self.run(now_ms, outputs)
            }
            WireMessage::Block(block) => self.on_block(now_ms, from, block).unwrap_or_default(),
            WireMessage::Txs(txs) => {
                let signatures = verify_signatures(&txs.iter().collect::<Vec<_>>());
                if txs.len() <= MAX_GOSSIP_TXS && signatures.iter().all(|ok| *ok) {
                    self.admit_relayed(txs, &signatures);
                }
                Vec::new()
            }
        }
    }

    /// A whole block from a peer: held for the engine, or verified at once when the engine
    /// was waiting for it. `None` when it cannot be a block of this chain's validators
    /// (see [`Self::is_genuine`]); a body already held is never replaced, and one at a
    /// finalized height is not kept.
    pub fn on_block(&mut self, now_ms: u64, from: Address, block: Block) -> Option<Vec<Action>> {
        if !self.is_genuine(&block) {
            return None;
        }
        let hash = block.hash();
        let known = self.processing.contains_key(&hash) || self.bodies.contains_key(&hash);
        if known || block.header().height <= self.finalized.height {
            return Some(Vec::new());
        }
        let header = block.signed.clone();
        let bytes = borsh::object_length(&block).unwrap_or(usize::MAX);
        if self.awaiting.remove(&hash).is_some() {
            self.hold(Held { block, bytes, received_ms: now_ms });
            let mut actions = Vec::new();
            let verdict = self.verify(hash, &mut actions);
            let outputs = verdict.map(|input| self.engine.handle(now_ms, input)).unwrap_or_default();
            actions.extend(self.run(now_ms, outputs));
            return Some(actions);
        }
        if self.bodies.len() >= BODIES_HELD || self.body_bytes.saturating_add(bytes) > BODY_BYTES_HELD {
            return Some(Vec::new());
        }
        self.hold(Held { block, bytes, received_ms: now_ms });
        let outputs = self.engine.handle(now_ms, Input::Message { from, message: Message::Propose(header) });
        Some(self.run(now_ms, outputs))
    }

    /// Whether a block could be one the engine will ask about: a header for this chain
    /// signed by a validator of the current set, over exactly these transactions. Anything
    /// else would only take memory, or displace the real body of a block under its header.
    fn is_genuine(&self, block: &Block) -> bool {
        let header = block.header();
        let proposer = Address::of(&header.proposer);
        header.chain_id == self.finalized.chain_id
            && self.finalized.active_set.get(&proposer).is_some_and(|(key, _)| *key == header.proposer)
            && block.txs.len() <= MAX_TXS_PER_BLOCK
            && block.signed.verify().is_ok()
            && tx_root(&block.txs) == header.tx_root
    }

    fn hold(&mut self, held: Held) {
        self.body_bytes = self.body_bytes.saturating_add(held.bytes);
        self.bodies.insert(held.block.hash(), held);
    }

    fn take_body(&mut self, hash: &Hash) -> Option<Block> {
        let held = self.bodies.remove(hash)?;
        self.body_bytes = self.body_bytes.saturating_sub(held.bytes);
        Some(held.block)
    }

    /// Lets go of bodies at or below `height` and those held longer than the time limit.
    fn evict_bodies(&mut self, height: u64, now_ms: u64) {
        let stale: Vec<Hash> = self
            .bodies
            .iter()
            .filter(|(_, held)| {
                held.block.header().height <= height || now_ms.saturating_sub(held.received_ms) > BODY_TTL_MS
            })
            .map(|(hash, _)| *hash)
            .collect();
        for hash in stale {
            self.take_body(&hash);
        }
        self.awaiting.retain(|_, awaited| *awaited > height);
    }

    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        self.evict_bodies(self.finalized.height, now_ms);
        let outputs = self.engine.handle(now_ms, Input::Tick);
        self.run(now_ms, outputs)
    }

    /// Answers a request for a header or a block (`GetHeader`, `GetBlock`) from what is
    /// in memory: the engine's tree and the blocks being decided. The actions, and whether
    /// they answer the request (if not, the block may be finalized: see
    /// [`Self::answer_from_store`]).
    pub fn answer_from_memory(&mut self, now_ms: u64, from: Address, request: &WireMessage) -> (Vec<Action>, bool) {
        match request {
            WireMessage::Consensus(Message::GetHeader { hash }) => {
                let outputs =
                    self.engine.handle(now_ms, Input::Message { from, message: Message::GetHeader { hash: *hash } });
                if outputs.is_empty() {
                    if let Some((block, ..)) = self.processing.get(hash) {
                        let message = WireMessage::Consensus(Message::Header(block.signed.clone()));
                        return (vec![Action::Send { to: from, message }], true);
                    }
                    return (Vec::new(), false);
                }
                (self.run(now_ms, outputs), true)
            }
            WireMessage::GetBlock(hash) => match self.processing.get(hash) {
                Some((block, ..)) => {
                    (vec![Action::Send { to: from, message: WireMessage::Block(block.clone()) }], true)
                }
                None => (Vec::new(), false),
            },
            _ => (Vec::new(), false),
        }
    }

    /// The answer to a request for a finalized header or block, read from `store`: IO,
    /// which a node does off its consensus task. A header costs a read of a few hundred
    /// bytes; a block, a read of the block.
    pub fn answer_from_store(store: &Store, request: &WireMessage) -> Option<WireMessage> {
        match request {
            WireMessage::Consensus(Message::GetHeader { hash }) => {
                let height = store.height_of(hash).ok()??;
                let (header, _) = store.header(height).ok()??;
                Some(WireMessage::Consensus(Message::Header(header)))
            }
            WireMessage::GetBlock(hash) => {
                let height = store.height_of(hash).ok()??;
                Some(WireMessage::Block(store.block(height).ok()??))
            }
            _ => None,
        }
    }

    fn parent_state(&self, parent: &Hash) -> Option<&State> {
        if *parent == self.finalized.last_block {
            return Some(&self.finalized);
        }
        self.processing.get(parent).map(|(_, state, _)| state)
    }

    /// Carries out the engine's outputs, feeding back what they produce, until quiet.
    fn run(&mut self, now_ms: u64, outputs: Vec<Output>) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut queue = std::collections::VecDeque::from(outputs);
        while let Some(output) = queue.pop_front() {
            let follow_up = match output {
                Output::Send { to, message } => {
                    actions.push(Action::Send { to, message: WireMessage::Consensus(message) });
                    None
                }
                Output::Broadcast(Message::Propose(header)) => {
                    let hash = header.header.hash();
                    match self.processing.get(&hash) {
                        Some((block, ..)) => actions.push(Action::Broadcast(WireMessage::Block(block.clone()))),
                        None => actions.push(Action::Broadcast(WireMessage::Consensus(Message::Propose(header)))),
                    }
                    None
                }
                Output::Broadcast(message) => {
                    actions.push(Action::Broadcast(WireMessage::Consensus(message)));
                    None
                }
                Output::SetTimer { at_ms } => {
                    actions.push(Action::SetTimer { at_ms });
                    None
                }
                Output::Verify(header) => {
                    let hash = header.header.hash();
                    if !self.bodies.contains_key(&hash) && self.awaiting.len() < BODIES_AWAITED {
                        self.awaiting.insert(hash, header.header.height);
                    }
                    self.verify(hash, &mut actions)
                }
                Output::BuildBlock { parent, .. } => self.build(now_ms, parent),
                Output::Accepted(header) => {
                    self.finalize(now_ms, header.header.hash(), &mut actions);
                    None
                }
                Output::Persist(record) => {
                    if let Err(error) = self.store.save_signing_record(&record) {
                        // What follows may be signed under this record; nothing may go out.
                        actions.push(Action::Fatal(format!("cannot save what this validator signed: {error}")));
                        return actions;
                    }
                    None
                }
                Output::Rejected(hash) => {
                    self.processing.remove(&hash);
                    None
                }
                Output::Evidence(_) => None,
            };
            if let Some(input) = follow_up {
                queue.extend(self.engine.handle(now_ms, input));
            }
        }
        actions
    }

    /// Executes a received block on its parent's state. When its body has not arrived,
    /// asks the peers for it and answers the engine once it comes.
    fn verify(&mut self, hash: Hash, actions: &mut Vec<Action>) -> Option<Input> {
        let Some(block) = self.take_body(&hash) else {
            if self.awaiting.contains_key(&hash) {
                actions.push(Action::Broadcast(WireMessage::GetBlock(hash)));
            }
            return None;
        };
        let parent = self.parent_state(&block.header().parent);
        let valid = match parent.map(|parent| apply_block_with(parent, &block, &self.mempool)) {
            Some(Ok((state, outcome))) => {
                self.processing.insert(hash, (block, state, outcome));
                true
            }
            _ => false,
        };
        Some(Input::Verified { hash, valid })
    }

    fn build(&mut self, now_ms: u64, parent: Hash) -> Option<Input> {
        let parent_state = self.parent_state(&parent)?;
        let txs = self.mempool.select(parent_state, MAX_BLOCK_TXS);
        let time_ms = next_block_time(parent_state.time_ms, now_ms);
        let (block, state, outcome) = propose_block_with(parent_state, &self.key, time_ms, txs, &self.mempool).ok()?;
        let header = block.signed.clone();
        tracing::debug!(height = header.header.height, txs = block.txs.len(), "built a block");
        self.processing.insert(block.hash(), (block, state, outcome));
        Some(Input::Proposal(header))
    }

    fn finalize(&mut self, now_ms: u64, hash: Hash, actions: &mut Vec<Action>) {
        let Some((block, state, outcome)) = self.processing.remove(&hash) else { return };
        if let Err(error) = self.store.commit(&block, &state, &outcome) {
            // The engine has moved on; a replica that cannot write must stop rather than
            // serve state it did not persist.
            actions.push(Action::Fatal(format!("cannot commit block {}: {error}", block.header().height)));
            return;
        }
        let height = block.header().height;
        self.finalized_txs += block.txs.len() as u64;
        let epoch_changed = validator_set(&state).epoch != validator_set(&self.finalized).epoch;
        self.finalized = state;
        self.processing.retain(|_, (b, ..)| b.header().height > height);
        self.evict_bodies(height, now_ms);
        self.mempool.prune(&self.finalized);
        if epoch_changed {
            let outputs = self.engine.handle(now_ms, Input::NewEpoch(validator_set(&self.finalized)));
            actions.extend(self.run(now_ms, outputs));
        }
        actions.push(Action::Finalized(Box::new(Finalized { block, outcome })));
    }
}
