//! Task specs, pool specs and device profiles: the documents clients and providers write
//! (TOML or JSON) and the chain records (borsh).
//!
//! Parsing checks the shape; [`TaskSpec::validate`] checks the meaning, with messages
//! that name the field and say what is allowed.

use std::collections::BTreeMap;
use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::ids::{BlobHash, PoolId};
use crate::sealed::ReaderKey;

/// Limits on what a spec may hold, so a task stays small on chain.
pub mod limits {
    pub const NAME_LEN: usize = 64;
    pub const INPUTS: usize = 64;
    pub const ARGS: usize = 64;
    pub const ARG_LEN: usize = 256;
    pub const ENV: usize = 64;
    pub const ENV_NAME_LEN: usize = 64;
    pub const ENV_VALUE_LEN: usize = 1_024;
    pub const MODELS: usize = 16;
    pub const MODEL_LEN: usize = 64;
    pub const DEVICES: usize = 16;
    pub const REPLICAS: u8 = 16;
    pub const SEGMENTS: u8 = 32;
    /// Checkpoints a container's declared training may make (as many as a result's files).
    pub const CHECKPOINTS: u64 = 10_000;
    pub const MAX_BID_WINDOW: u32 = 1_000;
    pub const MAX_DEADLINE_BLOCKS: u64 = 1_000_000;
    pub const MAX_REPUTATION: u16 = 1_000;
}

/// A fraction in millionths, written in documents as a number from 0 to 1 (`0.05`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize)]
pub struct Ratio(pub u32);

impl Ratio {
    pub const ONE: Ratio = Ratio(1_000_000);

    pub fn parts_per_million(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", f64::from(self.0) / 1e6)
    }
}

impl Serialize for Ratio {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(f64::from(self.0) / 1e6)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = <f64 as Deserialize>::deserialize(d)?;
        if !(0.0..=1.0).contains(&value) {
            return Err(serde::de::Error::custom(format!("a fraction is between 0 and 1; got {value}")));
        }
        Ok(Ratio((value * 1e6).round() as u32))
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// A WASI module run in a deterministic sandbox.
    Wasm,
    /// Inference of an ONNX model.
    Onnx,
    /// Training of a declared architecture.
    Train,
    /// A client's own OCI image (an image archive), run under the provider's sandbox.
    Container,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    pub workload: Workload,
    pub market: Market,
    #[serde(default)]
    pub requirements: Requirements,
    /// Blocks from award (or from submission, in a pool) by which the result must be
    /// committed.
    pub deadline_blocks: u64,
    #[serde(default)]
    pub verification: VerificationPolicy,
    /// Set for a private task: the client's reader key. The program and inputs are sealed
    /// blobs, their keys go to each worker by `PostKeys`, and results are sealed to this
    /// key. Not for pool jobs, whose racers are not known before they start.
    #[serde(default)]
    pub private: Option<ReaderKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// The module, model or training configuration to run.
    pub program: BlobHash,
    /// Named input blobs, each staged under its name for the runtime.
    #[serde(default)]
    pub inputs: BTreeMap<String, BlobHash>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables a `container` task's command runs with, over the image's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A `container` task's training, as proof of learning checks it (a `train` config
    /// declares its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
    #[serde(default)]
    pub limits: Limits,
}

/// The steps a container's program trains for and how often it checkpoints: the runtime's
/// `OGPU_STEPS` and `OGPU_CHECKPOINT_EVERY`. Its checkpoints are those after steps 0,
/// `checkpoint_every`, twice that, ... and `steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    pub steps: u64,
    pub checkpoint_every: u64,
}

impl Training {
    /// The steps its checkpoints are taken after, in order.
    pub fn checkpoint_steps(&self) -> impl Iterator<Item = u64> + '_ {
        let every = self.checkpoint_every.max(1);
        (0..self.steps).step_by(usize::try_from(every).unwrap_or(usize::MAX)).chain([self.steps])
    }

    /// How many checkpoints it makes.
    pub fn checkpoints(&self) -> u64 {
        1 + self.steps.div_ceil(self.checkpoint_every.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// WASM fuel (instructions, roughly); ignored by other runtimes.
    pub fuel: u64,
    pub memory_mb: u32,
    pub timeout_s: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { fuel: 10_000_000_000, memory_mb: 1_024, timeout_s: 3_600 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Market {
    /// Providers bid (sealed) during `bid_window` blocks; the price paid is at most
    /// `max_price` per executor.
    Auction { max_price: Amount, bid_window: u32 },
    /// A job for a standing pool, at the pool's price.
    Pool { pool: PoolId },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Requirements {
    pub gpus: u32,
    pub min_vram_mb: u64,
    /// GPU models allowed (for example `"H100"`); empty means any.
    pub models: Vec<String>,
    /// Out of 1000.
    pub min_reputation: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerificationPolicy {
    /// Reputation only.
    #[default]
    None,
    /// `n` independent executors; `quorum` of them must agree exactly. Under a
    /// `tolerance` above 0, executors whose results differ are judged by verifiers who run
    /// the task again and compare within it (see [`VerificationPolicy::tolerance`]).
    Replicate {
        n: u8,
        quorum: u8,
        #[serde(default)]
        tolerance: Ratio,
    },
    /// With probability `p`, a verifier re-executes the task; a result passes when it is
    /// the verifier's exactly, or within `tolerance`.
    SpotCheck {
        p: Ratio,
        #[serde(default)]
        tolerance: Ratio,
    },
    /// Verifiers replay `segments` random checkpoint segments; a replay passes within
    /// `tolerance` (relative L2 distance).
    ProofOfLearning { segments: u8, tolerance: Ratio },
}

impl VerificationPolicy {
    /// How many providers run the task itself.
    pub fn executors(&self) -> u8 {
        match self {
            VerificationPolicy::Replicate { n, .. } => *n,
            _ => 1,
        }
    }

    /// How far a result may be from a verifier's own and pass: 0 asks for the same bytes.
    /// Above 0, tensor files (`.npy`, `.safetensors`) and JSON files may differ in their
    /// floating-point numbers by this much (relative L2 distance for tensors, relative
    /// difference of each number for JSON); everything else must be the same.
    pub fn tolerance(&self) -> Ratio {
        match self {
            VerificationPolicy::None => Ratio(0),
            VerificationPolicy::Replicate { tolerance, .. }
            | VerificationPolicy::SpotCheck { tolerance, .. }
            | VerificationPolicy::ProofOfLearning { tolerance, .. } => *tolerance,
        }
    }

    /// How many verifiers the policy calls on at most, besides the executors.
    pub fn verifiers(&self) -> u8 {
        match self {
            VerificationPolicy::None | VerificationPolicy::Replicate { .. } => 0,
            VerificationPolicy::SpotCheck { .. } => 1,
            VerificationPolicy::ProofOfLearning { segments, .. } => *segments,
        }
    }
}

/// What a spec gets wrong, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    pub field: &'static str,
    pub problem: String,
}

fn check(ok: bool, field: &'static str, problem: impl FnOnce() -> String) -> Result<(), SpecError> {
    if ok { Ok(()) } else { Err(SpecError { field, problem: problem() }) }
}

fn check_text(text: &str, max: usize, field: &'static str) -> Result<(), SpecError> {
    check(!text.is_empty() && text.len() <= max, field, || format!("must be 1 to {max} bytes long"))?;
    check(!text.chars().any(char::is_control), field, || "must not contain control characters".into())
}

#[derive(Debug, thiserror::Error)]
pub enum ParseSpecError {
    #[error("not a valid TOML task spec: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("not a valid JSON task spec: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid task spec: {0}")]
    Invalid(#[from] SpecError),
}

impl TaskSpec {
    pub fn from_toml(text: &str) -> Result<TaskSpec, ParseSpecError> {
        let spec: TaskSpec = toml::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_json(text: &str) -> Result<TaskSpec, ParseSpecError> {
        let spec: TaskSpec = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks everything that does not depend on chain state.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_text(&self.name, limits::NAME_LEN, "name")?;
        self.workload.validate()?;
        match &self.market {
            Market::Auction { max_price, bid_window } => {
                check(!max_price.is_zero(), "market.max_price", || "must be more than 0".into())?;
                check((1..=limits::MAX_BID_WINDOW).contains(bid_window), "market.bid_window", || {
                    format!("must be 1 to {} blocks", limits::MAX_BID_WINDOW)
                })?;
            }
            Market::Pool { .. } => {
                check(self.verification == VerificationPolicy::None, "verification", || {
                    "a pool job uses its pool's verification; leave it out".into()
                })?;
                check(self.private.is_none(), "private", || {
                    "a pool job cannot be private: its keys cannot go to racers nobody knows in advance".into()
                })?;
            }
        }
        let r = &self.requirements;
        check(r.models.len() <= limits::MODELS, "requirements.models", || {
            format!("at most {} models", limits::MODELS)
        })?;
        for model in &r.models {
            check_text(model, limits::MODEL_LEN, "requirements.models")?;
        }
        check(r.min_reputation <= limits::MAX_REPUTATION, "requirements.min_reputation", || {
            format!("reputation is out of {}", limits::MAX_REPUTATION)
        })?;
        check((1..=limits::MAX_DEADLINE_BLOCKS).contains(&self.deadline_blocks), "deadline_blocks", || {
            format!("must be 1 to {} blocks", limits::MAX_DEADLINE_BLOCKS)
        })?;
        check(self.private.is_none_or(|key| key.is_strong()), "private", || {
            "a key of small order: anyone could open what is sealed to it".into()
        })?;
        self.validate_verification()
    }

    fn validate_verification(&self) -> Result<(), SpecError> {
        match self.verification {
            VerificationPolicy::None => Ok(()),
            VerificationPolicy::Replicate { n, quorum, tolerance } => {
                check((2..=limits::REPLICAS).contains(&n), "verification.n", || {
                    format!("replication needs 2 to {} executors", limits::REPLICAS)
                })?;
                check(quorum > n / 2 && quorum <= n, "verification.quorum", || {
                    format!("must be a majority of n = {n}: from {} to {n}", n / 2 + 1)
                })?;
                check(tolerance < Ratio::ONE, "verification.tolerance", || "must be below 1".into())
            }
            VerificationPolicy::SpotCheck { p, tolerance } => {
                check(p.0 > 0 && p <= Ratio::ONE, "verification.p", || {
                    "a spot check needs a probability above 0, at most 1".into()
                })?;
                check(tolerance < Ratio::ONE, "verification.tolerance", || "must be below 1".into())
            }
            VerificationPolicy::ProofOfLearning { segments, tolerance } => {
                let kind = self.workload.kind;
                check(matches!(kind, WorkloadKind::Train | WorkloadKind::Container), "verification.policy", || {
                    "proof_of_learning is for train and container workloads".into()
                })?;
                check(kind != WorkloadKind::Container || self.workload.training.is_some(), "workload", || {
                    "proof_of_learning of a container needs [workload.training]: the steps its program takes and \
                     how many apart it writes checkpoints to $OGPU_CHECKPOINT_DIR (docs/containers.md)"
                        .into()
                })?;
                check((1..=limits::SEGMENTS).contains(&segments), "verification.segments", || {
                    format!("must be 1 to {}", limits::SEGMENTS)
                })?;
                check(tolerance < Ratio::ONE, "verification.tolerance", || "must be below 1".into())
            }
        }
    }
}

impl Workload {
    /// Every blob the workload runs on: the program, then each input.
    pub fn blobs(&self) -> impl Iterator<Item = BlobHash> + '_ {
        std::iter::once(self.program).chain(self.inputs.values().copied())
    }

    fn validate(&self) -> Result<(), SpecError> {
        check(self.inputs.len() <= limits::INPUTS, "workload.inputs", || format!("at most {} inputs", limits::INPUTS))?;
        for name in self.inputs.keys() {
            check_text(name, limits::NAME_LEN, "workload.inputs")?;
            let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            check(plain && !name.starts_with('.'), "workload.inputs", || {
                format!("input name {name:?} must be a plain file name (letters, digits, '.', '_', '-')")
            })?;
        }
        check(self.args.len() <= limits::ARGS, "workload.args", || format!("at most {} arguments", limits::ARGS))?;
        for arg in &self.args {
            check(arg.len() <= limits::ARG_LEN, "workload.args", || format!("each at most {} bytes", limits::ARG_LEN))?;
        }
        self.validate_env()?;
        if let Some(training) = self.training {
            check(self.kind == WorkloadKind::Container, "workload.training", || {
                "only container workloads take it; a train config sets its own".into()
            })?;
            check(training.steps > 0, "workload.training.steps", || "must be more than 0".into())?;
            check(training.checkpoint_every > 0, "workload.training.checkpoint_every", || {
                "must be more than 0".into()
            })?;
            check(training.checkpoints() <= limits::CHECKPOINTS, "workload.training", || {
                format!("at most {} checkpoints: checkpoint_every is too small for the steps", limits::CHECKPOINTS)
            })?;
        }
        let l = &self.limits;
        check(l.fuel > 0, "workload.limits.fuel", || "must be more than 0".into())?;
        check((1..=1 << 20).contains(&l.memory_mb), "workload.limits.memory_mb", || "must be 1 to 1048576".into())?;
        check(l.timeout_s > 0, "workload.limits.timeout_s", || "must be more than 0".into())
    }
}

impl Workload {
    /// Names a shell and every runtime accept (`[A-Za-z_][A-Za-z0-9_]*`), values without
    /// NUL; the `OGPU_` prefix is the runtime's, for the paths it hands the program.
    fn validate_env(&self) -> Result<(), SpecError> {
        if self.env.is_empty() {
            return Ok(());
        }
        check(self.kind == WorkloadKind::Container, "workload.env", || "only container workloads take env".into())?;
        check(self.env.len() <= limits::ENV, "workload.env", || format!("at most {} variables", limits::ENV))?;
        for (name, value) in &self.env {
            let mut bytes = name.bytes();
            let first = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
            let plain = first && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
            check(plain && name.len() <= limits::ENV_NAME_LEN, "workload.env", || {
                format!(
                    "{name:?} must be letters, digits and '_', not starting with a digit, at most {} bytes",
                    limits::ENV_NAME_LEN
                )
            })?;
            check(!name.starts_with("OGPU_"), "workload.env", || {
                format!("{name:?}: names starting OGPU_ are the runtime's")
            })?;
            check(value.len() <= limits::ENV_VALUE_LEN && !value.contains('\0'), "workload.env", || {
                format!("the value of {name} must be at most {} bytes, without NUL", limits::ENV_VALUE_LEN)
            })?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Gpu,
    Cpu,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub kind: DeviceKind,
    pub model: String,
    pub memory_mb: u64,
    /// Measured by the provider's calibration benchmark.
    pub gflops: u32,
}

/// What a provider offers, as registered on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    pub devices: Vec<Device>,
    pub region: String,
    /// The key private tasks' inputs are wrapped to for this provider; without one it
    /// cannot take private tasks.
    #[serde(default)]
    pub reader: Option<ReaderKey>,
}

impl DeviceProfile {
    pub fn validate(&self) -> Result<(), SpecError> {
        check(!self.devices.is_empty() && self.devices.len() <= limits::DEVICES, "devices", || {
            format!("a profile lists 1 to {} devices", limits::DEVICES)
        })?;
        for device in &self.devices {
            check_text(&device.model, limits::MODEL_LEN, "devices.model")?;
        }
        check_text(&self.region, limits::NAME_LEN, "region")?;
        check(self.reader.is_none_or(|key| key.is_strong()), "reader", || {
            "a key of small order: anyone could open what is wrapped to it".into()
        })
    }

    pub fn gpus(&self) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(|d| d.kind == DeviceKind::Gpu)
    }
}

/// A standing service that providers subscribe to and clients send jobs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
    pub kind: WorkloadKind,
    pub model: BlobHash,
    pub price_per_job: Amount,
    /// The share of jobs that a verifier re-executes.
    pub verification_rate: Ratio,
    pub min_stake: Amount,
}

impl PoolSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        check_text(&self.name, limits::NAME_LEN, "name")?;
        check(!self.price_per_job.is_zero(), "price_per_job", || "must be more than 0".into())?;
        check(!self.min_stake.is_zero(), "min_stake", || {
            "subscribers must stake something; must be more than 0".into()
        })?;
        check(self.verification_rate <= Ratio::ONE, "verification_rate", || "must be at most 1".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUCTION: &str = r#"
name = "digits-mlp"
deadline_blocks = 100

[workload]
kind = "wasm"
program = "0000000000000000000000000000000000000000000000000000000000000001"
inputs = { "data.csv" = "0000000000000000000000000000000000000000000000000000000000000002" }
args = ["--epochs", "3"]

[market]
kind = "auction"
max_price = "2.5"
bid_window = 3

[requirements]
gpus = 1
min_vram_mb = 16000
models = ["H100", "A100"]

[verification]
policy = "replicate"
n = 3
quorum = 2
"#;

    #[test]
    fn a_toml_spec_parses_and_survives_json_and_borsh() {
        let spec = TaskSpec::from_toml(AUCTION).unwrap();
        assert_eq!(spec.market, Market::Auction { max_price: "2.5".parse().unwrap(), bid_window: 3 });
        assert_eq!(spec.verification, VerificationPolicy::Replicate { n: 3, quorum: 2, tolerance: Ratio(0) });
        assert_eq!(spec.workload.limits, Limits::default());
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(TaskSpec::from_json(&json).unwrap(), spec);
        let bytes = borsh::to_vec(&spec).unwrap();
        assert_eq!(borsh::from_slice::<TaskSpec>(&bytes).unwrap(), spec);
    }

    fn invalid(edit: impl Fn(&str) -> String) -> String {
        match TaskSpec::from_toml(&edit(AUCTION)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the edited spec was accepted"),
        }
    }

    #[test]
    fn malformed_specs_get_messages_that_name_the_field() {
        let cases: [(&str, &str, &str); 9] = [
            ("max_price = \"2.5\"", "max_price = \"0\"", "market.max_price: must be more than 0"),
            ("bid_window = 3", "bid_window = 0", "market.bid_window: must be 1 to 1000 blocks"),
            ("quorum = 2", "quorum = 1", "verification.quorum: must be a majority of n = 3"),
            ("n = 3", "n = 1", "verification.n: replication needs 2 to 16"),
            ("deadline_blocks = 100", "deadline_blocks = 0", "deadline_blocks: must be 1 to"),
            ("name = \"digits-mlp\"", "name = \"\"", "name: must be 1 to 64 bytes"),
            ("\"data.csv\"", "\"../etc/passwd\"", "workload.inputs: input name \"../etc/passwd\""),
            ("kind = \"wasm\"", "kind = \"docker\"", "unknown variant `docker`"),
            ("max_price = \"2.5\"", "max_price = \"-2\"", "not a number of oGPU"),
        ];
        for (from, to, expected) in cases {
            let message = invalid(|s| s.replacen(from, to, 1));
            assert!(message.contains(expected), "{to}: {message}");
        }
        let unknown = invalid(|s| s.replace("deadline_blocks = 100", "deadline_blocks = 100\ncolour = \"red\""));
        assert!(unknown.contains("unknown field `colour`"), "{unknown}");
        let policy = invalid(|s| {
            s.replace(
                "policy = \"replicate\"\nn = 3\nquorum = 2",
                "policy = \"proof_of_learning\"\nsegments = 2\ntolerance = 0.01",
            )
        });
        assert!(policy.contains("proof_of_learning is for train and container workloads"), "{policy}");
        let fraction =
            invalid(|s| s.replace("policy = \"replicate\"\nn = 3\nquorum = 2", "policy = \"spot_check\"\np = 1.5"));
        assert!(fraction.contains("between 0 and 1"), "{fraction}");
        assert!(TaskSpec::from_json("{").unwrap_err().to_string().contains("JSON"));
    }

    #[test]
    fn a_container_takes_an_environment_of_plain_names_and_no_other_kind_does() {
        let container = |env: &str| {
            AUCTION
                .replace("kind = \"wasm\"", "kind = \"container\"")
                .replace("args = [", &format!("env = {env}\nargs = ["))
        };
        let spec = TaskSpec::from_toml(&container("{ SEED = \"7\", _X1 = \"\" }")).unwrap();
        assert_eq!(spec.workload.env.get("SEED").map(String::as_str), Some("7"));
        assert_eq!(borsh::from_slice::<TaskSpec>(&borsh::to_vec(&spec).unwrap()).unwrap(), spec);
        let refused = [
            ("{ \"1X\" = \"a\" }", "must be letters, digits and '_'"),
            ("{ \"A=B\" = \"a\" }", "must be letters, digits and '_'"),
            ("{ \"\" = \"a\" }", "must be letters, digits and '_'"),
            ("{ OGPU_PROGRESS = \"/etc/passwd\" }", "names starting OGPU_ are the runtime's"),
            ("{ A = \"a\\u0000b\" }", "without NUL"),
        ];
        for (env, expected) in refused {
            let message = match TaskSpec::from_toml(&container(env)) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{env} was accepted"),
            };
            assert!(message.contains("workload.env") && message.contains(expected), "{env}: {message}");
        }
        let wasm = invalid(|s| s.replace("args = [", "env = { A = \"1\" }\nargs = ["));
        assert!(wasm.contains("only container workloads take env"), "{wasm}");
    }

    #[test]
    fn proof_of_learning_of_a_container_needs_its_declared_training_and_only_a_container_takes_one() {
        let pol = "policy = \"proof_of_learning\"\nsegments = 2\ntolerance = 0.01";
        let container = |workload: &str| {
            AUCTION
                .replace("kind = \"wasm\"", "kind = \"container\"")
                .replace("args = [", &format!("{workload}args = ["))
                .replace("policy = \"replicate\"\nn = 3\nquorum = 2", pol)
        };
        let spec = TaskSpec::from_toml(&container("training = { steps = 120, checkpoint_every = 50 }\n")).unwrap();
        let training = spec.workload.training.unwrap();
        assert_eq!(training.checkpoint_steps().collect::<Vec<_>>(), [0, 50, 100, 120]);
        assert_eq!(training.checkpoints(), 4);
        assert_eq!(Training { steps: 100, checkpoint_every: 50 }.checkpoint_steps().collect::<Vec<_>>(), [0, 50, 100]);
        assert_eq!(borsh::from_slice::<TaskSpec>(&borsh::to_vec(&spec).unwrap()).unwrap(), spec);
        assert_eq!(TaskSpec::from_json(&serde_json::to_string(&spec).unwrap()).unwrap(), spec);
        let refused = [
            ("", "proof_of_learning of a container needs [workload.training]"),
            ("training = { steps = 10, checkpoint_every = 0 }\n", "workload.training.checkpoint_every: must be more"),
            ("training = { steps = 0, checkpoint_every = 5 }\n", "workload.training.steps: must be more than 0"),
            ("training = { steps = 100000, checkpoint_every = 1 }\n", "at most 10000 checkpoints"),
        ];
        for (workload, expected) in refused {
            let message = TaskSpec::from_toml(&container(workload)).unwrap_err().to_string();
            assert!(message.contains(expected), "{workload}: {message}");
        }
        let wasm = invalid(|s| s.replace("args = [", "training = { steps = 10, checkpoint_every = 5 }\nargs = ["));
        assert!(wasm.contains("workload.training: only container workloads take it"), "{wasm}");
    }

    const READER: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    #[test]
    fn a_private_spec_names_the_clients_reader_key_and_a_pool_job_cannot_be_one() {
        let private = TaskSpec::from_toml(&AUCTION.replacen(
            "deadline_blocks = 100",
            &format!("deadline_blocks = 100\nprivate = \"{READER}\""),
            1,
        ))
        .unwrap();
        assert_eq!(private.private, Some(ReaderKey([1; 32])));
        let bytes = borsh::to_vec(&private).unwrap();
        assert_eq!(borsh::from_slice::<TaskSpec>(&bytes).unwrap(), private);
        let pooled = AUCTION
            .replacen("deadline_blocks = 100", &format!("deadline_blocks = 100\nprivate = \"{READER}\""), 1)
            .replacen(
                "kind = \"auction\"\nmax_price = \"2.5\"\nbid_window = 3",
                &format!("kind = \"pool\"\npool = \"{READER}\""),
                1,
            )
            .replacen("[verification]\npolicy = \"replicate\"\nn = 3\nquorum = 2\n", "", 1);
        let message = TaskSpec::from_toml(&pooled).unwrap_err().to_string();
        assert!(message.contains("private: a pool job cannot be private"), "{message}");
        let short = invalid(|s| s.replacen("deadline_blocks = 100", "deadline_blocks = 100\nprivate = \"01\"", 1));
        assert!(short.contains("private"), "{short}");
    }
}
