//! The Snowman engine: a tree of processing blocks rooted at the last accepted block, a
//! Snowball instance per block over its children, polls of validators sampled by stake,
//! transitive votes (a vote for a block counts for its ancestors), the proposer schedule,
//! header fetching for votes that name unknown blocks, and equivocation detection.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_core::block::SignedHeader;
use ogpu_core::rng::DetRng;
use ogpu_core::vote::{Chit, Evidence, SignedChit};
use ogpu_core::{Address, ChainId, Hash, PublicKey, SecretKey};

use crate::message::Message;
use crate::params::{Params, ParamsError};
use crate::schedule::{proposer_schedule, slot_of};
use crate::snowball::Snowball;
use crate::validators::ValidatorSet;

/// Poll ids carry the poller's clock (ms) above this many bits of sequence, so they rise
/// across a poller's restarts without it keeping a record, and an answerer can tell which
/// polls it may have answered before its own restart.
const POLL_SEQ_BITS: u32 = 16;
/// Headers more than this many heights past the highest block in the tree are not held:
/// a validator that signs headers with random parents or at far heights fills at most
/// this window (one first proposal and one orphan per proposer and height). A node
/// further behind than this walks back in steps of the window.
const HEIGHT_WINDOW: u64 = 1_024;
/// Answers remembered per poller. Polls in flight at once can arrive out of order, so
/// each may be answered; one that arrives after this many later ones goes unanswered.
const ANSWERS_KEPT: usize = 64;
/// How far past what it needs an engine claims, in one write, the poll numbers it may
/// answer: one disk write per this long at most.
const ANSWER_LEASE_MS: u64 = 10_000;

/// What this validator has signed, kept durably by the node so that a restart cannot
/// make it sign twice: a second header at a height, or a second answer to a poll (both
/// slashable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SigningRecord {
    /// The highest height this validator asked to build a block at.
    pub built_height: u64,
    /// It may have answered polls numbered before this time (ms), and no later ones.
    pub answer_lease_ms: u64,
}

#[derive(Debug, Clone)]
pub enum Input {
    Message {
        from: Address,
        message: Message,
    },
    /// Time has passed; expire what is due.
    Tick,
    /// A block this node built after [`Output::BuildBlock`].
    Proposal(SignedHeader),
    /// The chain's verdict on a block the engine asked to verify.
    Verified {
        hash: Hash,
        valid: bool,
    },
    /// The validator set of a new epoch, from the chain at an epoch boundary.
    NewEpoch(ValidatorSet),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: Address,
        message: Message,
    },
    /// To every validator but this one.
    Broadcast(Message),
    /// Call `handle(Input::Tick)` at this time (ms).
    SetTimer {
        at_ms: u64,
    },
    /// Execute the block and answer with `Input::Verified`.
    Verify(SignedHeader),
    /// It is this node's turn: build a block on `parent` and answer with `Input::Proposal`.
    BuildBlock {
        parent: Hash,
        height: u64,
    },
    Accepted(SignedHeader),
    Rejected(Hash),
    Evidence(Box<Evidence>),
    /// Write this record durably before carrying out the outputs that follow it.
    Persist(SigningRecord),
}

/// The accepted block the engine starts from: genesis (height 0) on a new chain, or the
/// last finalized block of a restarted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Genesis {
    pub hash: Hash,
    pub height: u64,
    pub randomness: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    /// `None` for the genesis root.
    header: Option<SignedHeader>,
    parent: Hash,
    height: u64,
    randomness: Hash,
    children: Vec<Hash>,
    snowball: Snowball,
    /// When this node first saw the block (for the proposer windows of its children).
    seen_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Poll {
    height: u64,
    deadline: u64,
    /// Sampled validators and the block each voted for, once it answers.
    votes: BTreeMap<Address, Option<Vote>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Vote {
    preferred: Hash,
    /// `None` for this node's own vote, and for answers to a node outside the set.
    chit: Option<SignedChit>,
}

/// Everything the engine remembers; two engines with equal state behave the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineState {
    now: u64,
    validators: ValidatorSet,
    root: Hash,
    /// The last accepted block and every processing block.
    blocks: BTreeMap<Hash, Node>,
    polls: BTreeMap<u64, Poll>,
    next_poll: u64,
    draws: u64,
    /// Blocks handed to the chain for verification, with their parents.
    verifying: BTreeMap<Hash, SignedHeader>,
    /// Headers waiting for their parent, by height and proposer.
    orphans: BTreeMap<(u64, PublicKey), Vec<SignedHeader>>,
    /// Headers asked for and not yet received, with when to give up and ask again.
    fetching: BTreeMap<Hash, u64>,
    /// The first header seen from each proposer at each height.
    proposals: BTreeMap<(u64, PublicKey), SignedHeader>,
    convicted: BTreeSet<(PublicKey, u64)>,
    /// Recently accepted or rejected blocks with their heights, so votes for them fetch
    /// nothing.
    decided: BTreeMap<Hash, u64>,
    /// The height this node last asked to build, so it asks once.
    built: u64,
    build_at: Option<u64>,
    /// What is on disk of what this node signed.
    record: SigningRecord,
    /// Polls numbered before this time (ms) may have been answered before a restart.
    answer_floor: u64,
    /// The answers this node signed for each poller.
    answered: BTreeMap<Address, Answers>,
}

/// The answers signed for one poller: the latest few, and up to which poll number older
/// ones were forgotten (and so can no longer be given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Answers {
    recent: BTreeMap<u64, SignedChit>,
    forgotten_up_to: Option<u64>,
}

impl EngineState {
    /// Headers held for later (orphans, first proposals per slot, blocks being verified)
    /// and convictions remembered: what a hostile validator could try to make grow.
    pub fn held(&self) -> usize {
        self.orphans.values().map(Vec::len).sum::<usize>()
            + self.proposals.len()
            + self.verifying.len()
            + self.convicted.len()
    }
}

pub struct Engine {
    params: Params,
    chain_id: ChainId,
    key: SecretKey,
    me: Address,
    seed: Hash,
    state: EngineState,
}

impl Engine {
    pub fn new(
        params: Params,
        chain_id: ChainId,
        key: SecretKey,
        validators: ValidatorSet,
        genesis: Genesis,
        seed: Hash,
    ) -> Result<Engine, ParamsError> {
        params.validate()?;
        let me = Address::of(&key.public());
        let root = Node {
            header: None,
            parent: Hash::ZERO,
            height: genesis.height,
            randomness: genesis.randomness,
            children: vec![],
            snowball: Snowball::default(),
            seen_at: 0,
        };
        let state = EngineState {
            now: 0,
            validators,
            root: genesis.hash,
            blocks: [(genesis.hash, root)].into(),
            polls: BTreeMap::new(),
            next_poll: 0,
            draws: 0,
            verifying: BTreeMap::new(),
            orphans: BTreeMap::new(),
            fetching: BTreeMap::new(),
            proposals: BTreeMap::new(),
            convicted: BTreeSet::new(),
            decided: BTreeMap::new(),
            built: genesis.height,
            build_at: None,
            record: SigningRecord::default(),
            answer_floor: 0,
            answered: BTreeMap::new(),
        };
        Ok(Engine { params, chain_id, key, me, seed, state })
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    pub fn address(&self) -> Address {
        self.me
    }

    pub fn last_accepted(&self) -> (Hash, u64) {
        (self.state.root, self.root().height)
    }

    fn root(&self) -> &Node {
        &self.state.blocks[&self.state.root]
    }

    /// The block this node would vote for: follow preferences down from the root.
    pub fn preferred_tip(&self) -> Hash {
        let mut at = self.state.root;
        while let Some(next) = self.state.blocks[&at].snowball.preference() {
            at = next;
        }
        at
    }

    /// Starts the engine from what this validator signed before (the default on a new
    /// node): schedules its first proposal.
    pub fn start(&mut self, now_ms: u64, signed: SigningRecord) -> Vec<Output> {
        self.state.now = now_ms;
        self.state.record = signed;
        self.state.answer_floor = signed.answer_lease_ms;
        self.state.built = self.state.built.max(signed.built_height);
        let mut out = Vec::new();
        self.schedule_proposal(&mut out);
        out
    }

    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Output> {
        self.state.now = self.state.now.max(now_ms);
        let mut out = Vec::new();
        match input {
            Input::Message { from, message } => self.on_message(from, message, &mut out),
            Input::Tick => self.on_tick(&mut out),
            Input::Proposal(header) => self.on_own_proposal(header, &mut out),
            Input::Verified { hash, valid } => self.on_verified(hash, valid, &mut out),
            Input::NewEpoch(validators) => {
                if validators.epoch > self.state.validators.epoch {
                    self.state.validators = validators;
                    self.state.polls.clear();
                    let members = &self.state.validators;
                    self.state.answered.retain(|poller, _| members.get(poller).is_some());
                }
            }
        }
        self.start_polls(&mut out);
        out
    }

    fn on_message(&mut self, from: Address, message: Message, out: &mut Vec<Output>) {
        if self.state.validators.get(&from).is_none() {
            // A node outside the set (one that follows the chain, or a validator seated in
            // an epoch this node has not reached) may ask what this node prefers and fetch
            // headers; it is answered without a signature, so nothing can be made of it.
            match message {
                Message::Query { poll, height, .. } => {
                    let preferred = self.preferred_tip();
                    out.push(Output::Send { to: from, message: Message::Vote { poll, height, preferred } });
                }
                Message::GetHeader { hash } => self.send_header(from, hash, out),
                _ => {}
            }
            return;
        }
        match message {
            Message::Propose(header) => self.on_header(from, header, true, out),
            Message::Header(header) => {
                if self.state.fetching.remove(&header.header.hash()).is_some() {
                    self.on_header(from, header, false, out);
                }
            }
            // Answered whatever epoch the poller is in: a member one epoch behind decides its
            // next height under the set it knows, and a chit binds poller, poll and height.
            // Queries used to name their epoch and be dropped across one, which left a
            // replica that fell behind at an epoch boundary unheard, and deaf, for good.
            Message::Query { poll, height, tip } => {
                if let Some(chit) = self.answer(from, poll, height, out) {
                    out.push(Output::Send { to: from, message: Message::Chit(chit) });
                }
                if !self.knows(&tip) {
                    self.fetch(from, tip, out);
                }
            }
            Message::Chit(chit) => self.on_chit(from, chit, out),
            Message::Vote { poll, height, preferred } => self.on_vote(from, poll, height, preferred, out),
            Message::GetHeader { hash } => self.send_header(from, hash, out),
        }
    }

    fn send_header(&self, to: Address, hash: Hash, out: &mut Vec<Output>) {
        if let Some(header) = self.state.blocks.get(&hash).and_then(|n| n.header.clone()) {
            out.push(Output::Send { to, message: Message::Header(header) });
        }
    }

    /// The signed answer to `from`'s poll: the one signed before if this exact question
    /// was asked before, a new one for a poll this node has not answered, and none when it
    /// cannot tell (a poll numbered before its restart, or older than what it remembers),
    /// so that no two answers to one poll can differ.
    fn answer(&mut self, from: Address, poll: u64, height: u64, out: &mut Vec<Output>) -> Option<SignedChit> {
        let numbered_at = poll >> POLL_SEQ_BITS;
        let latest = self.state.now.saturating_add(self.params.clock_drift_ms);
        if numbered_at < self.state.answer_floor || numbered_at > latest {
            return None;
        }
        if let Some(answers) = self.state.answered.get(&from) {
            if answers.forgotten_up_to.is_some_and(|forgotten| poll <= forgotten) {
                return None;
            }
            if let Some(given) = answers.recent.get(&poll) {
                return (given.chit.height == height).then(|| given.clone());
            }
        }
        if numbered_at >= self.state.record.answer_lease_ms {
            self.state.record.answer_lease_ms = latest.saturating_add(ANSWER_LEASE_MS);
            out.push(Output::Persist(self.state.record));
        }
        let chit =
            Chit { chain_id: self.chain_id.clone(), poller: from, poll, height, preferred: self.preferred_tip() };
        let signed = chit.sign(&self.key);
        let answers = self.state.answered.entry(from).or_default();
        answers.recent.insert(poll, signed.clone());
        if answers.recent.len() > ANSWERS_KEPT {
            answers.forgotten_up_to = answers.recent.pop_first().map(|(oldest, _)| oldest);
        }
        Some(signed)
    }

    /// The height of the highest block in the tree.
    fn top_height(&self) -> u64 {
        self.state.blocks.values().map(|n| n.height).max().unwrap_or(0)
    }

    /// A header from the network: check what the engine can check alone, detect a
    /// proposer's equivocation, then hand it to the chain for verification. `proposed`
    /// headers came unasked; the others this node fetched because a vote named them.
    fn on_header(&mut self, from: Address, header: SignedHeader, proposed: bool, out: &mut Vec<Output>) {
        let h = &header.header;
        let hash = h.hash();
        let Some(member) = self.state.validators.get(&Address::of(&h.proposer)) else { return };
        if h.chain_id != self.chain_id || member.key != h.proposer || h.height <= self.root().height {
            return;
        }
        // A block stamped in the future would let its proposer claim later slots, since
        // proposers are scheduled from their parent's time.
        if h.time_ms > self.state.now.saturating_add(self.params.clock_drift_ms) {
            return;
        }
        if self.state.blocks.contains_key(&hash) || self.state.verifying.contains_key(&hash) {
            return;
        }
        if header.verify().is_err() {
            return;
        }
        if h.height > self.top_height().saturating_add(HEIGHT_WINDOW) {
            // Too far ahead to hold; a header this node asked for still leads it back
            // towards its tree.
            if !proposed {
                self.fetch(from, h.parent, out);
            }
            return;
        }
        if let Some(parent) = self.state.blocks.get(&h.parent)
            && (parent.height + 1 != h.height || (proposed && !self.in_window(&h.parent, &h.proposer)))
        {
            return;
        }
        // An unasked second header from one proposer at one height is only evidence; one
        // that votes named must still be considered, or the network could move on
        // without this node.
        if !self.first_in_slot(&header, out) && proposed {
            return;
        }
        if self.state.blocks.contains_key(&h.parent) {
            self.state.verifying.insert(hash, header.clone());
            out.push(Output::Verify(header));
        } else {
            let parent = h.parent;
            let waiting = self.state.orphans.entry((h.height, h.proposer)).or_default();
            if waiting.len() < 2 && !waiting.iter().any(|o| o.header.hash() == hash) {
                waiting.push(header);
            }
            self.fetch(from, parent, out);
        }
    }

    /// Records the first header of each proposer at each height; a different one after it
    /// convicts the proposer. Whether `header` is that first one.
    fn first_in_slot(&mut self, header: &SignedHeader, out: &mut Vec<Output>) -> bool {
        let slot = (header.header.height, header.header.proposer);
        match self.state.proposals.get(&slot) {
            None => {
                self.state.proposals.insert(slot, header.clone());
                true
            }
            Some(first) if first.header.hash() != header.header.hash() => {
                let evidence = Evidence::DoubleProposal(first.clone(), header.clone());
                self.convict(evidence, out);
                false
            }
            Some(_) => true,
        }
    }

    fn convict(&mut self, evidence: Evidence, out: &mut Vec<Output>) {
        if let Ok(offence) = evidence.check(&self.chain_id)
            && self.state.convicted.insert((offence.offender, offence.height))
        {
            out.push(Output::Evidence(Box::new(evidence)));
        }
    }

    /// The slot of `proposer` in the schedule for the child of `parent`.
    fn slot_on(&self, parent: &Hash, proposer: &PublicKey) -> u64 {
        let Some(node) = self.state.blocks.get(parent) else { return self.params.proposer_slots as u64 };
        let schedule =
            proposer_schedule(&self.state.validators, &node.randomness, node.height + 1, self.params.proposer_slots);
        slot_of(&schedule, &Address::of(proposer)) as u64
    }

    /// Whether a proposal from `proposer` on `parent` comes within its window.
    fn in_window(&self, parent: &Hash, proposer: &PublicKey) -> bool {
        let Some(node) = self.state.blocks.get(parent) else { return false };
        let slot = self.slot_on(parent, proposer);
        // One window of slack for the network delay between proposer and receiver.
        let opens = node.seen_at + slot.saturating_sub(1) * self.params.proposer_window_ms;
        slot == 0 || self.state.now >= opens
    }

    /// Whether the block is in the tree or being verified. Blocks below the last accepted
    /// one count as known: there is nothing left to decide about them.
    fn knows(&self, hash: &Hash) -> bool {
        self.state.blocks.contains_key(hash)
            || self.state.verifying.contains_key(hash)
            || self.state.decided.contains_key(hash)
    }

    /// Asks `from` for a header, unless it was asked for recently; a request that is lost
    /// expires after a poll timeout and may be made again.
    fn fetch(&mut self, from: Address, hash: Hash, out: &mut Vec<Output>) {
        let now = self.state.now;
        self.state.fetching.retain(|_, until| *until > now);
        if self.state.fetching.len() < 64 && !self.state.fetching.contains_key(&hash) {
            self.state.fetching.insert(hash, now + self.params.poll_timeout_ms);
            out.push(Output::Send { to: from, message: Message::GetHeader { hash } });
        }
    }

    fn on_own_proposal(&mut self, header: SignedHeader, out: &mut Vec<Output>) {
        let hash = header.header.hash();
        if header.header.proposer != self.key.public() || !self.state.blocks.contains_key(&header.header.parent) {
            return;
        }
        self.state.proposals.insert((header.header.height, header.header.proposer), header.clone());
        out.push(Output::Broadcast(Message::Propose(header.clone())));
        self.insert(hash, header, out);
    }

    fn on_verified(&mut self, hash: Hash, valid: bool, out: &mut Vec<Output>) {
        let Some(header) = self.state.verifying.remove(&hash) else { return };
        if valid && self.state.blocks.contains_key(&header.header.parent) {
            self.insert(hash, header, out);
        } else {
            // Its children can never be valid.
            self.take_children_waiting(hash, header.header.height);
        }
    }

    /// Adds a verified block under its parent, then any orphans that were waiting for it.
    fn insert(&mut self, hash: Hash, header: SignedHeader, out: &mut Vec<Output>) {
        let parent = header.header.parent;
        let proposer = header.header.proposer;
        let node = Node {
            parent,
            height: header.header.height,
            randomness: header.header.randomness,
            header: Some(header),
            children: vec![],
            snowball: Snowball::default(),
            seen_at: self.state.now,
        };
        let rank = (self.slot_on(&parent, &proposer), hash);
        let height = node.height;
        self.state.blocks.insert(hash, node);
        if let Some(p) = self.state.blocks.get_mut(&parent) {
            p.children.push(hash);
            p.snowball.add_child(hash, rank);
        }
        for orphan in self.take_children_waiting(hash, height) {
            let orphan_hash = orphan.header.hash();
            if !self.state.blocks.contains_key(&orphan_hash) && !self.state.verifying.contains_key(&orphan_hash) {
                self.state.verifying.insert(orphan_hash, orphan.clone());
                out.push(Output::Verify(orphan));
            }
        }
    }

    /// Removes and returns the orphans waiting for `parent`, which is at `height`.
    fn take_children_waiting(&mut self, parent: Hash, height: u64) -> Vec<SignedHeader> {
        let above = height.saturating_add(1);
        let slots: Vec<(u64, PublicKey)> = self
            .state
            .orphans
            .range((above, PublicKey([0; 32]))..=(above, PublicKey([0xFF; 32])))
            .map(|(slot, _)| *slot)
            .collect();
        let mut children = Vec::new();
        for slot in slots {
            let Some(waiting) = self.state.orphans.get_mut(&slot) else { continue };
            let (mine, others): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|o| o.header.parent == parent);
            children.extend(mine);
            if others.is_empty() {
                self.state.orphans.remove(&slot);
            } else {
                *waiting = others;
            }
        }
        children
    }

    fn on_chit(&mut self, from: Address, signed: SignedChit, out: &mut Vec<Output>) {
        let chit = &signed.chit;
        if chit.chain_id != self.chain_id || chit.poller != self.me || Address::of(&signed.voter) != from {
            return;
        }
        let Some(poll) = self.state.polls.get(&chit.poll) else { return };
        if poll.height != chit.height || !poll.votes.contains_key(&from) || signed.verify().is_err() {
            return;
        }
        if let Some(Some(Vote { chit: Some(first), .. })) = poll.votes.get(&from) {
            if first.chit.preferred != chit.preferred {
                let evidence = Evidence::DoubleChit(first.clone(), signed.clone());
                self.convict(evidence, out);
            }
            return;
        }
        let (poll, preferred) = (chit.poll, chit.preferred);
        self.record_vote(from, poll, Vote { preferred, chit: Some(signed) }, out);
    }

    /// An unsigned answer, which validators give this node while it is outside their set.
    fn on_vote(&mut self, from: Address, poll: u64, height: u64, preferred: Hash, out: &mut Vec<Output>) {
        let Some(asked) = self.state.polls.get(&poll) else { return };
        if asked.height != height || !matches!(asked.votes.get(&from), Some(None)) {
            return;
        }
        self.record_vote(from, poll, Vote { preferred, chit: None }, out);
    }

    /// Counts `from`'s first answer to `poll`, fetching the block it names when unknown.
    fn record_vote(&mut self, from: Address, poll_id: u64, vote: Vote, out: &mut Vec<Output>) {
        let preferred = vote.preferred;
        if let Some(poll) = self.state.polls.get_mut(&poll_id) {
            poll.votes.insert(from, Some(vote));
        }
        if !self.knows(&preferred) {
            self.fetch(from, preferred, out);
        }
        if self.poll_settled(poll_id) {
            self.finish_poll(poll_id, out);
        }
    }

    /// A poll can stop waiting once every sampled validator answered, or once this node's
    /// preferred tip already has `alpha_conf` votes: later answers could only add to it.
    fn poll_settled(&self, poll_id: u64) -> bool {
        let Some(poll) = self.state.polls.get(&poll_id) else { return false };
        if poll.votes.values().all(Option::is_some) {
            return true;
        }
        let (_, _, alpha_conf) = self.params.scaled(self.state.validators.len());
        let tip = self.preferred_tip();
        let for_tip = poll.votes.values().flatten().filter(|v| self.is_ancestor_or_self(&tip, &v.preferred)).count();
        tip != self.state.root && for_tip >= alpha_conf
    }

    fn is_ancestor_or_self(&self, ancestor: &Hash, of: &Hash) -> bool {
        let Some(target) = self.state.blocks.get(ancestor) else { return false };
        let mut at = *of;
        while let Some(node) = self.state.blocks.get(&at) {
            if at == *ancestor {
                return true;
            }
            if node.height <= target.height {
                return false;
            }
            at = node.parent;
        }
        false
    }

    fn start_polls(&mut self, out: &mut Vec<Output>) {
        let (k, _, _) = self.params.scaled(self.state.validators.len());
        while self.state.polls.len() < self.params.concurrent_polls && !self.root().children.is_empty() {
            let poll_id = self.state.next_poll.max(self.state.now << POLL_SEQ_BITS);
            self.state.next_poll = poll_id + 1;
            self.state.draws += 1;
            let mut rng = DetRng::new(&self.seed, "ogpu/poll-sample", &[&self.state.draws.to_le_bytes()]);
            let sampled = self.state.validators.sample(&mut rng, k);
            let height = self.root().height + 1;
            let deadline = self.state.now + self.params.poll_timeout_ms;
            let mut votes: BTreeMap<Address, Option<Vote>> = sampled.iter().map(|a| (*a, None)).collect();
            if let Some(own) = votes.get_mut(&self.me) {
                *own = Some(Vote { preferred: self.preferred_tip(), chit: None });
            }
            let tip = self.preferred_tip();
            for to in sampled.into_iter().filter(|a| *a != self.me) {
                out.push(Output::Send { to, message: Message::Query { poll: poll_id, height, tip } });
            }
            self.state.polls.insert(poll_id, Poll { height, deadline, votes });
            out.push(Output::SetTimer { at_ms: deadline });
            if self.poll_settled(poll_id) {
                self.finish_poll(poll_id, out);
            }
        }
    }

    fn on_tick(&mut self, out: &mut Vec<Output>) {
        let now = self.state.now;
        let expired: Vec<u64> = self.state.polls.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for poll_id in expired {
            self.finish_poll(poll_id, out);
        }
        if self.state.build_at.is_some_and(|at| at <= now) {
            self.state.build_at = None;
            let height = self.root().height + 1;
            if self.root().children.is_empty() && self.state.built < height {
                self.state.built = height;
                self.state.record.built_height = height;
                out.push(Output::Persist(self.state.record));
                out.push(Output::BuildBlock { parent: self.state.root, height });
            }
        }
    }

    /// Applies a poll's votes: counts each vote for the voted block and its ancestors,
    /// updates the Snowball instances down the path the votes took, resets the rest, and
    /// accepts what has become decided.
    fn finish_poll(&mut self, poll_id: u64, out: &mut Vec<Output>) {
        let Some(poll) = self.state.polls.remove(&poll_id) else { return };
        let (_, alpha_pref, alpha_conf) = self.params.scaled(self.state.validators.len());
        let mut counts: BTreeMap<Hash, usize> = BTreeMap::new();
        for vote in poll.votes.values().flatten() {
            let mut at = vote.preferred;
            while let Some(node) = self.state.blocks.get(&at) {
                if at == self.state.root {
                    break;
                }
                *counts.entry(at).or_default() += 1;
                at = node.parent;
            }
        }
        let mut visited = BTreeSet::new();
        let mut at = self.state.root;
        loop {
            let node = &self.state.blocks[&at];
            let preferred = node.snowball.preference();
            let best = node
                .children
                .iter()
                .map(|c| (counts.get(c).copied().unwrap_or(0), Some(*c) == preferred, *c))
                .max_by_key(|(votes, is_preferred, _)| (*votes, *is_preferred));
            let Some((votes, _, child)) = best else { break };
            visited.insert(at);
            let stall_limit = 2 * self.params.beta;
            if let Some(node) = self.state.blocks.get_mut(&at) {
                node.snowball.record(child, votes, (alpha_pref, alpha_conf), stall_limit);
            }
            if votes < alpha_pref {
                break;
            }
            at = child;
        }
        for (hash, node) in self.state.blocks.iter_mut() {
            if !visited.contains(hash) {
                node.snowball.record_unsuccessful();
            }
        }
        while let Some(decided) = self.state.blocks[&self.state.root].snowball.decided(self.params.beta) {
            self.accept(decided, out);
        }
    }

    fn accept(&mut self, hash: Hash, out: &mut Vec<Output>) {
        let old_root = self.state.root;
        let siblings: Vec<Hash> =
            self.state.blocks[&old_root].children.iter().copied().filter(|c| *c != hash).collect();
        if let Some(old) = self.state.blocks.remove(&old_root) {
            self.state.decided.insert(old_root, old.height);
        }
        self.state.root = hash;
        for sibling in siblings {
            self.reject_subtree(sibling, out);
        }
        let height = self.root().height;
        if let Some(header) = self.root().header.clone() {
            out.push(Output::Accepted(header));
        }
        self.state.proposals.retain(|(h, _), _| *h > height);
        self.state.orphans.retain(|(h, _), _| *h > height);
        self.state.convicted.retain(|(_, h)| *h > height);
        self.state.verifying.retain(|_, header| header.header.height > height);
        self.schedule_proposal(out);
    }

    fn reject_subtree(&mut self, hash: Hash, out: &mut Vec<Output>) {
        let mut stack = vec![hash];
        while let Some(at) = stack.pop() {
            if let Some(node) = self.state.blocks.remove(&at) {
                stack.extend(node.children);
                self.remember_decided(at, node.height);
                out.push(Output::Rejected(at));
            }
        }
    }

    /// Remembers a decided block for a while (64 heights) so late votes for it are ignored.
    fn remember_decided(&mut self, hash: Hash, height: u64) {
        self.state.decided.insert(hash, height);
        let horizon = self.root().height.saturating_sub(64);
        self.state.decided.retain(|_, h| *h >= horizon);
    }

    /// After an acceptance: when may this node propose the next height?
    fn schedule_proposal(&mut self, out: &mut Vec<Output>) {
        let root = self.root();
        let height = root.height + 1;
        if self.state.validators.get(&self.me).is_none() || self.state.built >= height {
            return;
        }
        let schedule = proposer_schedule(&self.state.validators, &root.randomness, height, self.params.proposer_slots);
        let slot = slot_of(&schedule, &self.me) as u64;
        let parent_time = root.header.as_ref().map_or(0, |h| h.header.time_ms);
        let earliest = self.state.now.max(parent_time.saturating_add(self.params.min_block_interval_ms));
        let mut at = earliest.saturating_add(slot.saturating_mul(self.params.proposer_window_ms));
        if slot as usize == schedule.len() {
            // Unscheduled validators may all propose once the windows pass; spreading them
            // over the next window by a draw from the randomness keeps them from all
            // proposing conflicting blocks at once.
            let draw = Hash::tagged("ogpu/fallback-proposer", &[&root.randomness.0, &height.to_le_bytes(), &self.me.0]);
            let spread = u64::from_le_bytes(draw.0[..8].try_into().expect("32 > 8")) % self.params.proposer_window_ms;
            at = at.saturating_add(spread);
        }
        self.state.build_at = Some(at);
        out.push(Output::SetTimer { at_ms: at });
    }
}
