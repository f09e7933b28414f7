//! The training configuration (the task's program) and the task's arguments, read strictly:
//! every unknown key is refused and every number is checked before any work starts, so a
//! mistake in a config costs the client a clear message rather than a run.

use serde::Deserialize;

use crate::TaskError;

/// The most parameters a model may have, whatever its memory limit: a guard against a
/// config that asks for a layer of a billion units.
const MAX_PARAMS: u64 = 200_000_000;
/// The most checkpoints a run may write: each is a file the provider uploads and a
/// verifier may fetch.
pub const MAX_CHECKPOINTS: u64 = 1_000;
const MAX_STEPS: u64 = 100_000_000;
const MAX_BATCH: usize = 65_536;
const MAX_LAYERS: usize = 64;
const MAX_WIDTH: usize = 65_536;
const MAX_CONTEXT: usize = 4_096;
const MAX_KERNEL: usize = 15;
/// Bytes per parameter a run holds at least: the parameter, its gradient and two
/// optimizer moments, in float32. Activations come on top and are not counted.
const BYTES_PER_PARAM: u64 = 16;

/// A parsed and checked training configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub seed: u64,
    #[serde(default)]
    pub steps: Option<u64>,
    #[serde(default)]
    pub epochs: Option<u64>,
    pub batch_size: usize,
    pub checkpoint_every: u64,
    pub architecture: Architecture,
    pub optimizer: Optimizer,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    Mlp {
        hidden: Vec<usize>,
        #[serde(default)]
        activation: Activation,
    },
    Cnn {
        channels: Vec<usize>,
        kernel: usize,
        /// Height and width; the input's channels are its features over `height * width`.
        image: [usize; 2],
    },
    CharTransformer {
        layers: usize,
        heads: usize,
        dim: usize,
        context: usize,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    Tanh,
    Gelu,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
    },
    Adam {
        lr: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_eps")]
        eps: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_scale() -> f32 {
    1.0
}

/// A half-open range of rows `[start, end)` (for text, of byte positions).
pub type Rows = [usize; 2];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum Data {
    /// Comma-separated numbers without a header, the label in the last column; gzip when
    /// the file name ends in `.gz`.
    Csv {
        file: String,
        classes: usize,
        #[serde(default = "default_scale")]
        scale: f32,
        train_rows: Rows,
        #[serde(default)]
        eval_rows: Option<Rows>,
    },
    /// Two `.npy` files: float features `[rows, ...]` and integer labels `[rows]`.
    Npy {
        features: String,
        labels: String,
        classes: usize,
        #[serde(default = "default_scale")]
        scale: f32,
        train_rows: Rows,
        #[serde(default)]
        eval_rows: Option<Rows>,
    },
    /// One `.safetensors` file holding a float features tensor and an integer labels
    /// tensor, by name.
    Safetensors {
        file: String,
        features: String,
        labels: String,
        classes: usize,
        #[serde(default = "default_scale")]
        scale: f32,
        train_rows: Rows,
        #[serde(default)]
        eval_rows: Option<Rows>,
    },
    /// A text file for next-byte prediction; rows are byte positions.
    Text {
        file: String,
        train_rows: Rows,
        #[serde(default)]
        eval_rows: Option<Rows>,
    },
}

impl Data {
    pub fn train_rows(&self) -> Rows {
        match self {
            Data::Csv { train_rows, .. }
            | Data::Npy { train_rows, .. }
            | Data::Safetensors { train_rows, .. }
            | Data::Text { train_rows, .. } => *train_rows,
        }
    }

    pub fn eval_rows(&self) -> Option<Rows> {
        match self {
            Data::Csv { eval_rows, .. }
            | Data::Npy { eval_rows, .. }
            | Data::Safetensors { eval_rows, .. }
            | Data::Text { eval_rows, .. } => *eval_rows,
        }
    }

    /// The number of classes a classifier predicts: bytes for text.
    pub fn classes(&self) -> usize {
        match self {
            Data::Csv { classes, .. } | Data::Npy { classes, .. } | Data::Safetensors { classes, .. } => *classes,
            Data::Text { .. } => 256,
        }
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> TaskError {
    TaskError::InvalidProgram(format!("training config: {field} {why}"))
}

fn check(ok: bool, field: &str, why: impl FnOnce() -> String) -> Result<(), TaskError> {
    if ok { Ok(()) } else { Err(invalid(field, why())) }
}

fn check_count(value: usize, field: &str, max: usize) -> Result<(), TaskError> {
    check((1..=max).contains(&value), field, || format!("must be 1 to {max}, not {value}"))
}

impl Config {
    /// Reads a config from the program bytes and checks every field.
    pub fn parse(program: &[u8]) -> Result<Config, TaskError> {
        let text = std::str::from_utf8(program)
            .map_err(|_| TaskError::InvalidProgram("the training config is not UTF-8 text (TOML)".into()))?;
        let config: Config = toml::from_str(text)
            .map_err(|error| TaskError::InvalidProgram(format!("the training config is not valid: {error}")))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), TaskError> {
        match (self.steps, self.epochs) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid("steps/epochs", "must be given, one of them and not both"));
            }
            (Some(steps), None) => {
                check((1..=MAX_STEPS).contains(&steps), "steps", || format!("must be 1 to {MAX_STEPS}, not {steps}"))?
            }
            (None, Some(epochs)) => check(epochs >= 1, "epochs", || "must be at least 1".into())?,
        }
        check_count(self.batch_size, "batch_size", MAX_BATCH)?;
        check(self.checkpoint_every >= 1, "checkpoint_every", || "must be at least 1".into())?;
        self.validate_architecture()?;
        self.validate_optimizer()?;
        self.validate_data()
    }

    fn validate_architecture(&self) -> Result<(), TaskError> {
        match &self.architecture {
            Architecture::Mlp { hidden, .. } => {
                check(hidden.len() <= MAX_LAYERS, "architecture.mlp.hidden", || {
                    format!("may list at most {MAX_LAYERS} layers")
                })?;
                for width in hidden {
                    check_count(*width, "architecture.mlp.hidden", MAX_WIDTH)?;
                }
            }
            Architecture::Cnn { channels, kernel, image } => {
                check(!channels.is_empty() && channels.len() <= MAX_LAYERS, "architecture.cnn.channels", || {
                    format!("must list 1 to {MAX_LAYERS} layers")
                })?;
                for width in channels {
                    check_count(*width, "architecture.cnn.channels", MAX_WIDTH)?;
                }
                check(*kernel % 2 == 1 && *kernel <= MAX_KERNEL, "architecture.cnn.kernel", || {
                    format!("must be odd (so padding keeps the image size) and at most {MAX_KERNEL}, not {kernel}")
                })?;
                check_count(image[0], "architecture.cnn.image", MAX_WIDTH)?;
                check_count(image[1], "architecture.cnn.image", MAX_WIDTH)?;
            }
            Architecture::CharTransformer { layers, heads, dim, context } => {
                check_count(*layers, "architecture.char_transformer.layers", MAX_LAYERS)?;
                check_count(*heads, "architecture.char_transformer.heads", MAX_LAYERS)?;
                check_count(*dim, "architecture.char_transformer.dim", MAX_WIDTH)?;
                check_count(*context, "architecture.char_transformer.context", MAX_CONTEXT)?;
                check(dim % heads == 0, "architecture.char_transformer.dim", || {
                    format!("must be a multiple of heads ({heads}), not {dim}")
                })?;
                check(matches!(self.data, Data::Text { .. }), "data.format", || {
                    "must be \"text\" for a char_transformer".into()
                })?;
            }
        }
        if !matches!(self.architecture, Architecture::CharTransformer { .. }) {
            check(!matches!(self.data, Data::Text { .. }), "data.format", || {
                "\"text\" is only for a char_transformer".into()
            })?;
        }
        Ok(())
    }

    fn validate_optimizer(&self) -> Result<(), TaskError> {
        let positive = |value: f64, field: &str| {
            check(value.is_finite() && value > 0.0, field, || format!("must be a positive number, not {value}"))
        };
        let fraction = |value: f64, field: &str| {
            check((0.0..1.0).contains(&value), field, || format!("must be at least 0 and below 1, not {value}"))
        };
        match self.optimizer {
            Optimizer::Sgd { lr, momentum } => {
                positive(lr, "optimizer.sgd.lr")?;
                fraction(momentum, "optimizer.sgd.momentum")
            }
            Optimizer::Adam { lr, beta1, beta2, eps } => {
                positive(lr, "optimizer.adam.lr")?;
                fraction(beta1, "optimizer.adam.beta1")?;
                fraction(beta2, "optimizer.adam.beta2")?;
                positive(eps, "optimizer.adam.eps")
            }
        }
    }

    fn validate_data(&self) -> Result<(), TaskError> {
        let rows = |range: Rows, field: &str| {
            check(range[0] < range[1], field, || {
                format!("must be a range [start, end) with start below end, not [{}, {}]", range[0], range[1])
            })
        };
        rows(self.data.train_rows(), "data.train_rows")?;
        if let Some(eval) = self.data.eval_rows() {
            rows(eval, "data.eval_rows")?;
        }
        match &self.data {
            Data::Csv { classes, scale, .. }
            | Data::Npy { classes, scale, .. }
            | Data::Safetensors { classes, scale, .. } => {
                check((2..=MAX_WIDTH).contains(classes), "data.classes", || {
                    format!("must be 2 to {MAX_WIDTH}, not {classes}")
                })?;
                check(scale.is_finite() && *scale != 0.0, "data.scale", || {
                    format!("must be a finite non-zero number, not {scale}")
                })
            }
            Data::Text { train_rows, eval_rows, .. } => {
                let Architecture::CharTransformer { context, .. } = self.architecture else { return Ok(()) };
                check(train_rows[1] - train_rows[0] > context, "data.train_rows", || {
                    format!("must span more than context ({context}) bytes")
                })?;
                if let Some(eval) = eval_rows {
                    check(eval[1] - eval[0] > context, "data.eval_rows", || {
                        format!("must span more than context ({context}) bytes")
                    })?;
                }
                Ok(())
            }
        }
    }

    /// The number of training samples: rows, or for text the windows of `context + 1`
    /// bytes that fit in the training range.
    pub fn train_samples(&self) -> usize {
        let [start, end] = self.data.train_rows();
        match self.architecture {
            Architecture::CharTransformer { context, .. } => end - start - context,
            _ => end - start,
        }
    }

    /// The total number of optimizer steps.
    pub fn total_steps(&self) -> u64 {
        match (self.steps, self.epochs) {
            (Some(steps), _) => steps,
            (None, epochs) => epochs.unwrap_or(1).saturating_mul(self.batches_per_epoch()),
        }
    }

    pub fn batches_per_epoch(&self) -> u64 {
        self.train_samples().div_ceil(self.batch_size) as u64
    }

    /// The number of checkpoints: the initial parameters, one every `checkpoint_every`
    /// steps, and the final parameters when the last segment is shorter.
    pub fn checkpoints(&self) -> u64 {
        self.total_steps().div_ceil(self.checkpoint_every) + 1
    }

    /// Checks what depends on the data and the job's limits: the step and checkpoint counts
    /// and the model's size against `memory_mb`.
    pub fn check_size(&self, features: usize, memory_mb: u32) -> Result<(), TaskError> {
        let steps = self.total_steps();
        check((1..=MAX_STEPS).contains(&steps), "epochs", || {
            format!("give {steps} steps; at most {MAX_STEPS} are allowed")
        })?;
        check(self.checkpoints() <= MAX_CHECKPOINTS, "checkpoint_every", || {
            format!(
                "gives {} checkpoints over {steps} steps; at most {MAX_CHECKPOINTS} are allowed, so raise it",
                self.checkpoints()
            )
        })?;
        let params = self.parameter_count(features);
        check(params <= MAX_PARAMS, "architecture", || {
            format!("has {params} parameters; at most {MAX_PARAMS} are allowed")
        })?;
        let needed = params.saturating_mul(BYTES_PER_PARAM);
        let budget = u64::from(memory_mb) << 20;
        if needed > budget {
            return Err(TaskError::MemoryLimit { limit_mb: memory_mb });
        }
        Ok(())
    }

    /// The number of parameters the architecture has for inputs of `features` values, in
    /// saturating arithmetic (a huge config gives a huge count, never an overflow).
    pub fn parameter_count(&self, features: usize) -> u64 {
        let classes = self.data.classes() as u64;
        let linear = |inputs: u64, outputs: u64| inputs.saturating_mul(outputs).saturating_add(outputs);
        match &self.architecture {
            Architecture::Mlp { hidden, .. } => {
                let mut total = 0u64;
                let mut inputs = features as u64;
                for width in hidden.iter().map(|w| *w as u64).chain([classes]) {
                    total = total.saturating_add(linear(inputs, width));
                    inputs = width;
                }
                total
            }
            Architecture::Cnn { channels, kernel, image } => {
                let pixels = (image[0] as u64).saturating_mul(image[1] as u64);
                let mut total = 0u64;
                let mut inputs = (features as u64) / pixels.max(1);
                let taps = (*kernel as u64) * (*kernel as u64);
                for width in channels.iter().map(|w| *w as u64) {
                    total = total.saturating_add(linear(inputs.saturating_mul(taps), width));
                    inputs = width;
                }
                total.saturating_add(linear(inputs.saturating_mul(pixels), classes))
            }
            Architecture::CharTransformer { layers, dim, context, .. } => {
                let d = *dim as u64;
                let block = linear(d, d)
                    .saturating_mul(4)
                    .saturating_add(linear(d, 4 * d))
                    .saturating_add(linear(4 * d, d))
                    .saturating_add(4 * d);
                let embeddings = (classes + *context as u64).saturating_mul(d);
                block
                    .saturating_mul(*layers as u64)
                    .saturating_add(embeddings)
                    .saturating_add(2 * d)
                    .saturating_add(linear(d, classes))
            }
        }
    }
}

/// Which backend runs the job, from the task's `device=` argument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceKind {
    #[default]
    Cpu,
    Wgpu,
    Cuda,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

/// Reads the task's arguments: only `device=cpu|wgpu|cuda` (default `cpu`).
pub fn parse_args(args: &[String]) -> Result<DeviceKind, TaskError> {
    let mut device = None;
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(TaskError::BadInput(format!("argument {arg:?} is not key=value")));
        };
        match key {
            "device" if device.is_some() => {
                return Err(TaskError::BadInput("the argument device= is given twice".into()));
            }
            "device" => {
                device = Some(match value {
                    "cpu" => DeviceKind::Cpu,
                    "wgpu" => DeviceKind::Wgpu,
                    "cuda" => DeviceKind::Cuda,
                    other => {
                        return Err(TaskError::BadInput(format!(
                            "device={other} is not a device; use device=cpu, device=wgpu or device=cuda"
                        )));
                    }
                });
            }
            other => {
                return Err(TaskError::BadInput(format!(
                    "the train runtime takes only device=cpu|wgpu|cuda, not {other}="
                )));
            }
        }
    }
    Ok(device.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MLP: &str = r#"
        seed = 1
        steps = 10
        batch_size = 4
        checkpoint_every = 5
        [architecture.mlp]
        hidden = [8]
        [optimizer.adam]
        lr = 0.01
        [data]
        format = "csv"
        file = "d.csv"
        classes = 3
        train_rows = [0, 10]
    "#;

    fn error(edit: impl Fn(&str) -> String) -> String {
        match Config::parse(edit(MLP).as_bytes()) {
            Err(TaskError::InvalidProgram(message)) => message,
            other => panic!("expected an invalid program, got {other:?}"),
        }
    }

    #[test]
    fn a_small_config_reads_with_defaults() {
        let config = Config::parse(MLP.as_bytes()).unwrap();
        assert_eq!(config.architecture, Architecture::Mlp { hidden: vec![8], activation: Activation::Relu });
        assert_eq!(config.optimizer, Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
        assert_eq!((config.total_steps(), config.checkpoints()), (10, 3));
        assert_eq!(config.data.eval_rows(), None);
        assert_eq!(config.parameter_count(4), (4 * 8 + 8) + (8 * 3 + 3));
    }

    #[test]
    fn epochs_count_batches_with_a_short_last_one() {
        let config = Config::parse(MLP.replace("steps = 10", "epochs = 2").as_bytes()).unwrap();
        assert_eq!((config.batches_per_epoch(), config.total_steps(), config.checkpoints()), (3, 6, 3));
    }

    #[test]
    fn every_mistake_names_its_field() {
        type Edit = fn(&str) -> String;
        let cases: [(Edit, &str); 12] = [
            (|c| c.replace("[architecture.mlp]", "[architecture.rnn]"), "unknown variant `rnn`"),
            (|c| c.replace("batch_size = 4", "batch_size = 0"), "batch_size must be 1 to"),
            (|c| c.replace("train_rows = [0, 10]", "train_rows = [10, 10]"), "data.train_rows must be a range"),
            (|c| c.replace("train_rows = [0, 10]", "train_rows = [0, 1, 2]"), "invalid length 3"),
            (|c| c.replace("steps = 10", "steps = 10\nepochs = 1"), "one of them and not both"),
            (|c| c.replace("steps = 10", ""), "steps/epochs must be given"),
            (|c| c.replace("lr = 0.01", "lr = -1.0"), "optimizer.adam.lr must be a positive number"),
            (|c| c.replace("lr = 0.01", "lr = nan"), "optimizer.adam.lr must be a positive number"),
            (|c| c.replace("seed = 1", "seed = 1\ncolour = 2"), "unknown field `colour`"),
            (|c| c.replace("classes = 3", "classes = 3\nlabel = 0"), "unknown field `label`"),
            (|c| c.replace("format = \"csv\"", "format = \"parquet\""), "unknown variant `parquet`"),
            (|c| c.replace("hidden = [8]", "hidden = [0]"), "architecture.mlp.hidden must be 1 to"),
        ];
        for (edit, words) in cases {
            let message = error(edit);
            assert!(message.contains(words), "{message:?} should say {words:?}");
        }
        assert!(Config::parse(b"\xff").is_err());
    }

    #[test]
    fn architectures_and_data_formats_must_fit_together() {
        let transformer = "[architecture.char_transformer]\nlayers = 1\nheads = 3\ndim = 8\ncontext = 4";
        let message = error(|c| c.replace("[architecture.mlp]\n        hidden = [8]", transformer));
        assert!(message.contains("dim must be a multiple of heads"), "{message}");
        let transformer = transformer.replace("heads = 3", "heads = 2");
        let message = error(|c| c.replace("[architecture.mlp]\n        hidden = [8]", &transformer));
        assert!(message.contains("must be \"text\" for a char_transformer"), "{message}");
        let cnn = "[architecture.cnn]\nchannels = [4]\nkernel = 2\nimage = [2, 2]";
        let message = error(|c| c.replace("[architecture.mlp]\n        hidden = [8]", cnn));
        assert!(message.contains("kernel must be odd"), "{message}");
    }

    #[test]
    fn size_is_checked_against_the_memory_limit() {
        let big = Config::parse(MLP.replace("hidden = [8]", "hidden = [8192, 8192, 8192]").as_bytes()).unwrap();
        assert_eq!(big.check_size(64, 1024), Err(TaskError::MemoryLimit { limit_mb: 1024 }));
        let many = MLP.replace("checkpoint_every = 5", "checkpoint_every = 1").replace("steps = 10", "steps = 5000");
        let many = Config::parse(many.as_bytes()).unwrap();
        assert!(matches!(many.check_size(4, 1024), Err(TaskError::InvalidProgram(m)) if m.contains("checkpoints")));
    }

    #[test]
    fn only_a_device_argument_is_taken() {
        let args = |list: &[&str]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(parse_args(&[]), Ok(DeviceKind::Cpu));
        assert_eq!(parse_args(&args(&["device=cuda"])), Ok(DeviceKind::Cuda));
        assert!(matches!(parse_args(&args(&["device=tpu"])), Err(TaskError::BadInput(m)) if m.contains("device=tpu")));
        assert!(parse_args(&args(&["batch=3"])).is_err());
        assert!(parse_args(&args(&["device=cpu", "device=cpu"])).is_err());
        assert!(parse_args(&args(&["cpu"])).is_err());
    }
}
