//! The Snowman engine: a tree of processing blocks rooted at the last accepted block, a
//! Snowball instance per block over its children, polls of validators sampled by stake,
//! transitive votes (a vote for a block counts for its ancestors), the proposer schedule,
//! header fetching for votes that name unknown blocks, and equivocation detection.

use std::collections::{BTreeMap, BTreeSet};

use ogpu_core::block::SignedHeader;
use ogpu_core::rng::DetRng;
use ogpu_core::vote::{Chit, Evidence, SignedChit};
use ogpu_core::{Address, ChainId, Hash, PublicKey, SecretKey};

use crate::message::Message;
use crate::params::{Params, ParamsError};
use crate::schedule::{proposer_schedule, slot_of};
use crate::snowball::Snowball;
use crate::validators::ValidatorSet;

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
    /// `None` for this node's own vote.
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
    /// Headers waiting for their parent.
    orphans: BTreeMap<Hash, Vec<SignedHeader>>,
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

    /// Starts the engine: schedules this node's first proposal.
    pub fn start(&mut self, now_ms: u64) -> Vec<Output> {
        self.state.now = now_ms;
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
                }
            }
        }
        self.start_polls(&mut out);
        out
    }

    fn on_message(&mut self, from: Address, message: Message, out: &mut Vec<Output>) {
        if self.state.validators.get(&from).is_none() {
            return;
        }
        match message {
            Message::Propose(header) => self.on_header(from, header, true, out),
            Message::Header(header) => {
                if self.state.fetching.remove(&header.header.hash()).is_some() {
                    self.on_header(from, header, false, out);
                }
            }
            Message::Query { epoch, poll, height, tip } => {
                if epoch == self.state.validators.epoch {
                    let chit = Chit {
                        chain_id: self.chain_id.clone(),
                        poller: from,
                        poll,
                        height,
                        preferred: self.preferred_tip(),
                    };
                    out.push(Output::Send { to: from, message: Message::Chit(chit.sign(&self.key)) });
                    if !self.knows(&tip) {
                        self.fetch(from, tip, out);
                    }
                }
            }
            Message::Chit(chit) => self.on_chit(from, chit, out),
            Message::GetHeader { hash } => {
                if let Some(header) = self.state.blocks.get(&hash).and_then(|n| n.header.clone()) {
                    out.push(Output::Send { to: from, message: Message::Header(header) });
                }
            }
        }
    }

    /// A header from the network: check what the engine can check alone, detect a
    /// proposer's equivocation, then hand it to the chain for verification.
    fn on_header(&mut self, from: Address, header: SignedHeader, proposed: bool, out: &mut Vec<Output>) {
        let h = &header.header;
        let hash = h.hash();
        let Some(member) = self.state.validators.get(&Address::of(&h.proposer)) else { return };
        if h.chain_id != self.chain_id || member.key != h.proposer || h.height <= self.root().height {
            return;
        }
        if self.state.blocks.contains_key(&hash) || self.state.verifying.contains_key(&hash) {
            return;
        }
        if header.verify().is_err() {
            return;
        }
        match self.state.blocks.get(&h.parent) {
            Some(parent) => {
                if parent.height + 1 != h.height || (proposed && !self.in_window(&h.parent, &h.proposer)) {
                    return;
                }
                self.check_equivocation(&header, out);
                self.state.verifying.insert(hash, header.clone());
                out.push(Output::Verify(header));
            }
            None => {
                self.check_equivocation(&header, out);
                let parent = h.parent;
                let waiting = self.state.orphans.entry(parent).or_default();
                if waiting.len() < 8 && !waiting.iter().any(|o| o.header.hash() == hash) {
                    waiting.push(header);
                }
                self.fetch(from, parent, out);
            }
        }
    }

    fn check_equivocation(&mut self, header: &SignedHeader, out: &mut Vec<Output>) {
        let slot = (header.header.height, header.header.proposer);
        match self.state.proposals.get(&slot) {
            None => {
                self.state.proposals.insert(slot, header.clone());
            }
            Some(first) if first.header.hash() != header.header.hash() => {
                let evidence = Evidence::DoubleProposal(first.clone(), header.clone());
                self.convict(evidence, out);
            }
            Some(_) => {}
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
            self.state.orphans.remove(&hash);
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
        self.state.blocks.insert(hash, node);
        if let Some(p) = self.state.blocks.get_mut(&parent) {
            p.children.push(hash);
            p.snowball.add_child(hash, rank);
        }
        for orphan in self.state.orphans.remove(&hash).unwrap_or_default() {
            let orphan_hash = orphan.header.hash();
            if !self.state.blocks.contains_key(&orphan_hash) && !self.state.verifying.contains_key(&orphan_hash) {
                self.state.verifying.insert(orphan_hash, orphan.clone());
                out.push(Output::Verify(orphan));
            }
        }
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
        let preferred = chit.preferred;
        let poll_id = chit.poll;
        if let Some(poll) = self.state.polls.get_mut(&poll_id) {
            poll.votes.insert(from, Some(Vote { preferred, chit: Some(signed) }));
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
            let poll_id = self.state.next_poll;
            self.state.next_poll += 1;
            self.state.draws += 1;
            let mut rng = DetRng::new(&self.seed, "ogpu/poll-sample", &[&self.state.draws.to_le_bytes()]);
            let sampled = self.state.validators.sample(&mut rng, k);
            let height = self.root().height + 1;
            let deadline = self.state.now + self.params.poll_timeout_ms;
            let mut votes: BTreeMap<Address, Option<Vote>> = sampled.iter().map(|a| (*a, None)).collect();
            if let Some(own) = votes.get_mut(&self.me) {
                *own = Some(Vote { preferred: self.preferred_tip(), chit: None });
            }
            let epoch = self.state.validators.epoch;
            let tip = self.preferred_tip();
            for to in sampled.into_iter().filter(|a| *a != self.me) {
                out.push(Output::Send { to, message: Message::Query { epoch, poll: poll_id, height, tip } });
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
        self.state.orphans.retain(|_, waiting| waiting.iter().any(|o| o.header.height > height));
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
        let mut at = earliest + slot * self.params.proposer_window_ms;
        if slot as usize == schedule.len() {
            // Unscheduled validators may all propose once the windows pass; spreading them
            // over the next window by a draw from the randomness keeps them from all
            // proposing conflicting blocks at once.
            let draw = Hash::tagged("ogpu/fallback-proposer", &[&root.randomness.0, &height.to_le_bytes(), &self.me.0]);
            let spread = u64::from_le_bytes(draw.0[..8].try_into().expect("32 > 8")) % self.params.proposer_window_ms;
            at += spread;
        }
        self.state.build_at = Some(at);
        out.push(Output::SetTimer { at_ms: at });
    }
}
