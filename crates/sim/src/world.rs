//! The simulated world: validators in regions, a virtual clock, an event queue, and the
//! bookkeeping that turns a run into a report (finality, message counts, safety, the
//! trace hash).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use ogpu_consensus::{Engine, Genesis, Input, Message, Output, Params, ParamsError, SigningRecord, ValidatorSet};
use ogpu_core::block::{BlockHeader, SignedHeader, vrf_input};
use ogpu_core::encoding::Canonical;
use ogpu_core::rng::DetRng;
use ogpu_core::vote::Evidence;
use ogpu_core::{Address, ChainId, Hash, SecretKey, merkle, vrf};

use crate::actor::{Actor, Strategy};
use crate::latency::LatencyMatrix;

#[derive(Debug, Clone)]
pub struct Config {
    pub validators: usize,
    pub seed: u64,
    pub params: Params,
    pub stake: StakeDistribution,
    /// Which validators misbehave, and how.
    pub byzantine: Vec<(usize, Strategy)>,
    /// Probability that any one message is lost.
    pub loss: f64,
    /// Each delay varies uniformly by up to this fraction either way.
    pub jitter: f64,
    pub partitions: Vec<Partition>,
    /// Simulated time to run.
    pub duration_ms: u64,
    pub latency: LatencyMatrix,
}

impl Config {
    /// `validators` honest validators with equal stake over the ten-region matrix, 10% jitter.
    pub fn new(validators: usize, seed: u64) -> Config {
        Config {
            validators,
            seed,
            params: Params::default(),
            stake: StakeDistribution::Equal,
            byzantine: vec![],
            loss: 0.0,
            jitter: 0.1,
            partitions: vec![],
            duration_ms: 10_000,
            latency: LatencyMatrix::aws_ten_regions(),
        }
    }
}

/// While active, messages between `side` and the other validators are lost.
#[derive(Debug, Clone)]
pub struct Partition {
    pub start_ms: u64,
    pub end_ms: u64,
    pub side: BTreeSet<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StakeDistribution {
    Equal,
    /// Pareto-distributed stake with this shape (smaller is more skewed).
    Pareto {
        shape: f64,
    },
}

#[derive(Debug, Clone)]
pub struct Report {
    pub validators: usize,
    /// For each block every honest validator accepted: proposal to the last acceptance (ms).
    pub finality_ms: Vec<f64>,
    /// For the same blocks: what the round trips alone allow (see [`rtt_floor`]).
    pub rtt_floor_ms: Vec<f64>,
    pub messages: u64,
    /// Heights that two honest validators accepted differently.
    pub safety_violations: u64,
    /// Verified evidence of equivocation, by offender.
    pub evidence: Vec<Evidence>,
    /// Per honest validator, `(height, time_ms)` of each acceptance.
    pub acceptances: Vec<Vec<(u64, f64)>>,
    pub trace_hash: Hash,
}

impl Report {
    pub fn finalized_blocks(&self) -> usize {
        self.finality_ms.len()
    }

    pub fn messages_per_block(&self) -> f64 {
        self.messages as f64 / self.finalized_blocks().max(1) as f64
    }
}

pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

enum Event {
    Deliver { from: usize, message: Message },
    Tick,
    Verified { hash: Hash, valid: bool },
    Proposal(SignedHeader),
}

struct Scheduled {
    at_us: u64,
    seq: u64,
    node: usize,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_us, self.seq).cmp(&(other.at_us, other.seq))
    }
}

struct World {
    config: Config,
    chain_id: ChainId,
    genesis: Genesis,
    actors: Vec<Actor>,
    index: BTreeMap<Address, usize>,
    region: Vec<usize>,
    stake: Vec<u128>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    timers: BTreeSet<(usize, u64)>,
    rng: DetRng,
    headers: BTreeMap<Hash, SignedHeader>,
    proposed_at: BTreeMap<Hash, f64>,
    preferences: BTreeMap<usize, Hash>,
    canonical: BTreeMap<u64, Hash>,
    accepted: Vec<BTreeMap<u64, (Hash, f64)>>,
    messages: u64,
    safety_violations: u64,
    evidence: Vec<Evidence>,
    trace: blake3::Hasher,
}

/// The stake of each validator under `config`, drawn from its seed.
pub fn stakes(config: &Config) -> Vec<u128> {
    let mut rng = DetRng::new(&Hash::tagged("ogpu/sim/stake", &[&config.seed.to_le_bytes()]), "ogpu/sim", &[]);
    (0..config.validators)
        .map(|_| match config.stake {
            StakeDistribution::Equal => 1_000_000,
            StakeDistribution::Pareto { shape } => {
                let u = (rng.below(1 << 52) as f64 + 1.0) / (1u64 << 52) as f64;
                (1_000_000.0 / u.powf(1.0 / shape)).min(1e12) as u128
            }
        })
        .collect()
}

/// Runs one simulation to the end of its duration.
pub fn run(config: Config) -> Result<Report, ParamsError> {
    let mut world = World::new(config)?;
    for node in 0..world.actors.len() {
        let outputs = world.actors[node].engine.start(0, SigningRecord::default());
        world.apply(node, 0, outputs);
    }
    let end_us = world.config.duration_ms * 1_000;
    while let Some(Reverse(next)) = world.queue.pop() {
        if next.at_us > end_us {
            break;
        }
        world.step(next);
    }
    Ok(world.report())
}

impl World {
    fn new(config: Config) -> Result<World, ParamsError> {
        let seed = Hash::tagged("ogpu/sim/seed", &[&config.seed.to_le_bytes()]);
        let rng = DetRng::new(&seed, "ogpu/sim", &[]);
        let keys: Vec<SecretKey> =
            (0..config.validators).map(|i| SecretKey::from_name(&format!("sim-{}-{i}", config.seed))).collect();
        let stake = stakes(&config);
        let set = ValidatorSet::new(0, keys.iter().zip(&stake).map(|(k, s)| (k.public(), *s)));
        let chain_id: ChainId = "ogpu-sim".parse().expect("a valid chain id");
        let genesis = Genesis { hash: Hash::tagged("ogpu/sim/genesis", &[]), height: 0, randomness: seed };
        let byzantine: BTreeMap<usize, Strategy> = config.byzantine.iter().copied().collect();
        let actors = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let engine_seed = Hash::tagged("ogpu/sim/engine", &[&seed.0, &(i as u64).to_le_bytes()]);
                let engine =
                    Engine::new(config.params, chain_id.clone(), key.clone(), set.clone(), genesis, engine_seed)?;
                Ok(Actor { engine, key: key.clone(), strategy: byzantine.get(&i).copied() })
            })
            .collect::<Result<Vec<_>, ParamsError>>()?;
        let index = actors.iter().enumerate().map(|(i, a)| (a.address(), i)).collect();
        let regions = config.latency.len();
        let honest = (0..config.validators).filter(|i| !byzantine.contains_key(i)).count();
        Ok(World {
            region: (0..config.validators).map(|i| i % regions).collect(),
            chain_id,
            genesis,
            actors,
            index,
            stake,
            queue: BinaryHeap::new(),
            seq: 0,
            timers: BTreeSet::new(),
            rng,
            headers: BTreeMap::new(),
            proposed_at: BTreeMap::new(),
            preferences: BTreeMap::new(),
            canonical: BTreeMap::new(),
            accepted: vec![BTreeMap::new(); honest.max(config.validators)],
            messages: 0,
            safety_violations: 0,
            evidence: vec![],
            trace: blake3::Hasher::new(),
            config,
        })
    }

    fn schedule(&mut self, at_us: u64, node: usize, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at_us, seq: self.seq, node, event }));
    }

    fn step(&mut self, next: Scheduled) {
        let Scheduled { at_us, node, event, .. } = next;
        let now_ms = at_us / 1_000;
        let (tag, digest, input) = match event {
            Event::Deliver { from, message } => {
                if let (Message::GetHeader { hash }, false) = (&message, self.actors[node].is_honest()) {
                    // Byzantine validators collude: they can serve any header ever built.
                    if let Some(header) = self.headers.get(hash).cloned() {
                        self.deliver(node, from, Message::Header(header), at_us);
                    }
                }
                let digest = Hash::of_bytes(&message.encode());
                (0u8, digest, Input::Message { from: self.actors[from].address(), message })
            }
            Event::Tick => {
                self.timers.remove(&(node, now_ms));
                (1, Hash::ZERO, Input::Tick)
            }
            Event::Verified { hash, valid } => (2, hash, Input::Verified { hash, valid }),
            Event::Proposal(header) => (3, header.header.hash(), Input::Proposal(header)),
        };
        self.trace.update(&at_us.to_le_bytes());
        self.trace.update(&(node as u64).to_le_bytes());
        self.trace.update(&[tag]);
        self.trace.update(&digest.0);
        let least_preferred = self.least_preferred();
        let outputs = self.actors[node].step(now_ms, input, least_preferred);
        self.apply(node, at_us, outputs);
        if self.actors[node].is_honest() {
            self.preferences.insert(node, self.actors[node].engine.preferred_tip());
        }
    }

    /// The tip the fewest honest validators prefer, when they are split.
    fn least_preferred(&self) -> Option<Hash> {
        let mut counts: BTreeMap<Hash, usize> = BTreeMap::new();
        for tip in self.preferences.values() {
            *counts.entry(*tip).or_default() += 1;
        }
        if counts.len() < 2 {
            return None;
        }
        counts.into_iter().min_by_key(|(hash, count)| (*count, *hash)).map(|(hash, _)| hash)
    }

    fn apply(&mut self, node: usize, at_us: u64, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send { to, message } => {
                    if let Some(&to) = self.index.get(&to) {
                        self.deliver(node, to, message, at_us);
                    }
                }
                Output::Broadcast(message) => {
                    for to in (0..self.actors.len()).filter(|to| *to != node) {
                        self.deliver(node, to, message.clone(), at_us);
                    }
                }
                Output::SetTimer { at_ms } => {
                    let at_ms = at_ms.max(at_us.div_ceil(1_000));
                    if self.timers.insert((node, at_ms)) {
                        self.schedule(at_ms * 1_000, node, Event::Tick);
                    }
                }
                Output::Verify(header) => {
                    let hash = header.header.hash();
                    let valid = self.verify(&header);
                    self.schedule(at_us, node, Event::Verified { hash, valid });
                }
                Output::BuildBlock { parent, height } => self.build(node, parent, height, at_us),
                Output::Accepted(header) => self.record_acceptance(node, &header, at_us),
                // Simulated validators never restart, so they keep nothing on disk.
                Output::Rejected(_) | Output::Persist(_) => {}
                Output::Evidence(evidence) => {
                    if evidence.check(&self.chain_id).is_ok() {
                        self.evidence.push(*evidence);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, message: Message, at_us: u64) {
        self.messages += 1;
        let now_ms = at_us / 1_000;
        let cut = self
            .config
            .partitions
            .iter()
            .any(|p| (p.start_ms..p.end_ms).contains(&now_ms) && p.side.contains(&from) != p.side.contains(&to));
        let lost = self.config.loss > 0.0 && self.uniform() < self.config.loss;
        if cut || lost {
            return;
        }
        let one_way = self.config.latency.one_way_ms(self.region[from], self.region[to]);
        let jitter = 1.0 + self.config.jitter * (2.0 * self.uniform() - 1.0);
        let delay_us = ((one_way * jitter).max(0.05) * 1_000.0) as u64;
        self.schedule(at_us + delay_us, to, Event::Deliver { from, message });
    }

    fn uniform(&mut self) -> f64 {
        self.rng.below(1 << 53) as f64 / (1u64 << 53) as f64
    }

    fn randomness_of(&self, hash: &Hash) -> Option<Hash> {
        if *hash == self.genesis.hash {
            return Some(self.genesis.randomness);
        }
        self.headers.get(hash).map(|h| h.header.randomness)
    }

    /// What the chain would check of a header in this simulation: its proposer's
    /// signature and VRF randomness on its parent.
    fn verify(&self, header: &SignedHeader) -> bool {
        let h = &header.header;
        let Some(parent_randomness) = self.randomness_of(&h.parent) else { return false };
        let input = vrf_input(&self.chain_id, h.height, &parent_randomness);
        header.verify().is_ok() && vrf::verify(&h.proposer, &input, &h.randomness_proof) == Ok(h.randomness)
    }

    fn header(&self, key: &SecretKey, parent: Hash, height: u64, time_ms: u64, variant: u8) -> Option<SignedHeader> {
        let parent_randomness = self.randomness_of(&parent)?;
        let (randomness, randomness_proof) = vrf::prove(key, &vrf_input(&self.chain_id, height, &parent_randomness));
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height,
            parent,
            proposer: key.public(),
            time_ms,
            tx_root: merkle::root(&[]),
            state_root: Hash::tagged("ogpu/sim/state", &[&height.to_le_bytes(), &[variant]]),
            randomness,
            randomness_proof,
        };
        Some(header.sign(key))
    }

    fn build(&mut self, node: usize, parent: Hash, height: u64, at_us: u64) {
        let key = self.actors[node].key.clone();
        let now_ms = at_us / 1_000;
        let Some(first) = self.header(&key, parent, height, now_ms, 0) else { return };
        self.record_header(&first, at_us);
        let equivocates = self.actors[node].strategy.is_some_and(Strategy::equivocates_proposals);
        if equivocates {
            let Some(second) = self.header(&key, parent, height, now_ms, 1) else { return };
            self.record_header(&second, at_us);
            // The own engine proposes the first (and broadcasts it); the second goes to
            // the odd-numbered validators, so each half sees a different block first.
            for to in (0..self.actors.len()).filter(|to| *to != node && to % 2 == 1) {
                self.deliver(node, to, Message::Propose(second.clone()), at_us.saturating_sub(1));
            }
        }
        self.schedule(at_us, node, Event::Proposal(first));
    }

    fn record_header(&mut self, header: &SignedHeader, at_us: u64) {
        let hash = header.header.hash();
        self.headers.insert(hash, header.clone());
        self.proposed_at.insert(hash, at_us as f64 / 1_000.0);
    }

    fn record_acceptance(&mut self, node: usize, header: &SignedHeader, at_us: u64) {
        if !self.actors[node].is_honest() {
            return;
        }
        let (height, hash) = (header.header.height, header.header.hash());
        match self.canonical.get(&height) {
            Some(first) if *first != hash => self.safety_violations += 1,
            Some(_) => {}
            None => {
                self.canonical.insert(height, hash);
            }
        }
        self.accepted[node].insert(height, (hash, at_us as f64 / 1_000.0));
    }

    /// The finality floor for a block from `proposer`: its one-way delay to each honest
    /// validator plus ceil(beta / polls) round trips to the nearest validators holding an
    /// `alpha_conf / k` share of stake; the largest over honest validators.
    fn rtt_floor(&self, proposer: usize) -> f64 {
        let (k, _, alpha_conf) = self.config.params.scaled(self.actors.len());
        let rounds = u64::from(self.config.params.beta).div_ceil(self.config.params.concurrent_polls as u64) as f64;
        let total: u128 = self.stake.iter().sum();
        let needed = total as f64 * alpha_conf as f64 / k as f64;
        self.honest()
            .map(|n| {
                let mut by_distance: Vec<(f64, u128)> = (0..self.actors.len())
                    .map(|j| {
                        (
                            if j == n { 0.0 } else { self.config.latency.rtt(self.region[n], self.region[j]) },
                            self.stake[j],
                        )
                    })
                    .collect();
                by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut held = 0.0;
                let quorum_rtt = by_distance
                    .iter()
                    .find(|(_, stake)| {
                        held += *stake as f64;
                        held >= needed
                    })
                    .map_or(0.0, |(rtt, _)| *rtt);
                let propagation = if n == proposer {
                    0.0
                } else {
                    self.config.latency.one_way_ms(self.region[proposer], self.region[n])
                };
                propagation + rounds * quorum_rtt
            })
            .fold(0.0, f64::max)
    }

    fn honest(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.actors.len()).filter(|i| self.actors[*i].is_honest())
    }

    fn report(self) -> Report {
        let honest: Vec<usize> = self.honest().collect();
        let mut finality_ms = Vec::new();
        let mut rtt_floor_ms = Vec::new();
        for (height, hash) in &self.canonical {
            let times: Option<Vec<f64>> = honest
                .iter()
                .map(|n| self.accepted[*n].get(height).filter(|(h, _)| h == hash).map(|(_, t)| *t))
                .collect();
            let (Some(times), Some(proposed)) = (times, self.proposed_at.get(hash)) else { continue };
            let last = times.into_iter().fold(0.0, f64::max);
            finality_ms.push(last - proposed);
            let proposer = self.headers.get(hash).and_then(|h| self.index.get(&Address::of(&h.header.proposer)));
            rtt_floor_ms.push(proposer.map_or(f64::NAN, |p| self.rtt_floor(*p)));
        }
        let acceptances =
            honest.iter().map(|n| self.accepted[*n].iter().map(|(height, (_, t))| (*height, *t)).collect()).collect();
        Report {
            validators: self.actors.len(),
            finality_ms,
            rtt_floor_ms,
            messages: self.messages,
            safety_violations: self.safety_violations,
            evidence: self.evidence,
            acceptances,
            trace_hash: Hash(*self.trace.finalize().as_bytes()),
        }
    }
}
