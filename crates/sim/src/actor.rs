//! Validators as the simulator runs them: the honest engine, or the engine wrapped by a
//! byzantine strategy. Each strategy is a small, named change to what an honest engine
//! sends, so tests compose them rather than flag honest code.

use ogpu_consensus::{Engine, Input, Message, Output};
use ogpu_core::vote::Chit;
use ogpu_core::{Address, Hash, SecretKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Receives and sends nothing.
    Mute,
    /// When scheduled, signs two different blocks for one height and shows each to half
    /// the validators.
    EquivocatingProposer,
    /// Answers each query twice, with two different blocks.
    EquivocatingVoter,
    /// Proposes conflicting blocks, then answers every query with the block fewest honest
    /// validators prefer, to keep them split.
    Balancing,
}

impl Strategy {
    pub const ALL: [Strategy; 4] =
        [Strategy::Mute, Strategy::EquivocatingProposer, Strategy::EquivocatingVoter, Strategy::Balancing];

    pub fn equivocates_proposals(self) -> bool {
        matches!(self, Strategy::EquivocatingProposer | Strategy::Balancing)
    }
}

pub(crate) struct Actor {
    pub engine: Engine,
    pub key: SecretKey,
    pub strategy: Option<Strategy>,
}

impl Actor {
    pub fn is_honest(&self) -> bool {
        self.strategy.is_none()
    }

    /// Runs the engine and lets the strategy rewrite what it says. `least_preferred` is the
    /// block the fewest honest validators prefer (an omniscient attacker's view).
    pub fn step(&mut self, now: u64, input: Input, least_preferred: Option<Hash>) -> Vec<Output> {
        if self.strategy == Some(Strategy::Mute) {
            return Vec::new();
        }
        let outputs = self.engine.handle(now, input);
        match self.strategy {
            Some(Strategy::EquivocatingVoter) => outputs.into_iter().flat_map(|o| self.double_chit(o)).collect(),
            Some(Strategy::Balancing) => outputs.into_iter().map(|o| self.balance(o, least_preferred)).collect(),
            _ => outputs,
        }
    }

    fn resign(&self, chit: &Chit, preferred: Hash) -> Message {
        Message::Chit(Chit { preferred, ..chit.clone() }.sign(&self.key))
    }

    fn double_chit(&self, output: Output) -> Vec<Output> {
        match &output {
            Output::Send { to, message: Message::Chit(signed) } => {
                let (root, _) = self.engine.last_accepted();
                let other =
                    if signed.chit.preferred == root { Hash::tagged("ogpu/sim/bogus", &[&root.0]) } else { root };
                let second = Output::Send { to: *to, message: self.resign(&signed.chit, other) };
                vec![output, second]
            }
            _ => vec![output],
        }
    }

    fn balance(&self, output: Output, least_preferred: Option<Hash>) -> Output {
        match (&output, least_preferred) {
            (Output::Send { to, message: Message::Chit(signed) }, Some(target)) => {
                Output::Send { to: *to, message: self.resign(&signed.chit, target) }
            }
            _ => output,
        }
    }

    pub fn address(&self) -> Address {
        self.engine.address()
    }
}
