//! `ogpu bench runtime`: the AI runtimes' throughput on this machine, through the same
//! `Runtime::run` a provider calls, for comparison with PyTorch and onnxruntime run on the
//! same data (`bench/compare-runtime.sh` runs both and prints the ratios; its Python side
//! mirrors every setting here).
//!
//! - Training: the digits MLP (64, 64, 10; Adam) and a small CNN (8x8 images, 8 and 16
//!   channels of 3x3; SGD with momentum), batches of 32 from rows 0..1499, samples per
//!   second after a warm-up.
//! - Inference: the digits ONNX classifier on 256,000 rows in batches of 256, rows per
//!   second; MiniLM (from the shared data) on 20 batches of 32 sentences of 32 tokens,
//!   sentences per second; each on tract and, given its library, onnxruntime.
//!
//! Every figure is timed between progress reports: from the end of the first step or batch
//! to the end of the last, so loading the model and data, preparing plans, writing the
//! outputs and checkpoints are left out, as they are on the Python side. Each is the best
//! of three runs, since the machines we measure on are shared.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ogpu_core::spec::{Limits, WorkloadKind};
use ogpu_runtime::onnx::npy::{self, Array};
use ogpu_runtime::{Job, Libraries, OnnxRuntime, Progress, Runtime, TrainRuntime};
use serde_json::json;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../examples/digits-train/digits.csv.gz");
const DIGITS_MODEL: &[u8] = include_bytes!("../../../examples/digits-infer/digits_mlp.onnx");
const DIGITS_PIXELS: &[u8] = include_bytes!("../../../examples/digits-infer/pixels.npy");
const LIMITS: Limits = Limits { fuel: 1, memory_mb: 8192, timeout_s: 3600 };

const TRAIN_BATCH: u64 = 32;
const WARM_UP: u64 = 20;
const MLP_STEPS: u64 = 3_000;
const CNN_STEPS: u64 = 600;
const DIGITS_ROWS: usize = 1_000 * DIGITS_BATCH;
const RUNS: usize = 3;
const DIGITS_BATCH: usize = 256;
const MINILM_BATCHES: usize = 20;
const MINILM_BATCH: usize = 32;
/// Words that are each one WordPiece token: 30 of them with `[CLS]` and `[SEP]` make 32.
const WORDS: [&str; 24] = [
    "the", "network", "runs", "small", "models", "on", "idle", "cards", "and", "every", "worker", "checks", "a",
    "share", "of", "results", "before", "payment", "is", "made", "to", "each", "honest", "provider",
];

pub fn run(data: &Path, device: &str, libraries: &Libraries) -> Result<()> {
    let onnx = OnnxRuntime::with_libraries(libraries)?;
    let engines: &[&str] = match libraries.onnxruntime {
        Some(_) => &["tract", "ort"],
        None => &["tract"],
    };
    let mut report = json!({
        "device": device,
        "threads": std::thread::available_parallelism()?.get(),
        "train_batch_size": TRAIN_BATCH,
        "train_mlp_samples_per_s": best(|| train(&mlp_config(), MLP_STEPS, device))?.round(),
        "train_cnn_samples_per_s": best(|| train(&cnn_config(), CNN_STEPS, device))?.round(),
    });
    for engine in engines {
        report[format!("infer_digits_{engine}_rows_per_s")] = best(|| digits(&onnx, engine))?.round().into();
    }
    let minilm = data.join("minilm");
    match std::fs::read(minilm.join("model.onnx")) {
        Ok(model) => {
            let tokenizer = std::fs::read(minilm.join("tokenizer.json"))?;
            for engine in engines {
                let rate = best(|| sentences(&onnx, &model, &tokenizer, engine))?;
                report[format!("infer_minilm_{engine}_sentences_per_s")] = ((rate * 10.0).round() / 10.0).into();
            }
        }
        Err(error) => eprintln!("MiniLM skipped: {}: {error}", minilm.display()),
    }
    println!("{report}");
    Ok(())
}

/// The highest of `RUNS` measurements.
fn best(measure: impl Fn() -> Result<f64>) -> Result<f64> {
    (0..RUNS).try_fold(0f64, |best, _| Ok(best.max(measure()?)))
}

fn training_config(steps: u64, architecture: &str, optimizer: &str) -> String {
    format!(
        "seed = 1\nsteps = {steps}\nbatch_size = {TRAIN_BATCH}\ncheckpoint_every = {steps}\n{architecture}\n\
         {optimizer}\n[data]\nformat = \"csv\"\nfile = \"digits.csv.gz\"\nclasses = 10\nscale = 16.0\n\
         train_rows = [0, 1500]\n"
    )
}

fn mlp_config() -> String {
    training_config(MLP_STEPS, "[architecture.mlp]\nhidden = [64]", "[optimizer.adam]\nlr = 0.002")
}

fn cnn_config() -> String {
    let cnn = "[architecture.cnn]\nchannels = [8, 16]\nkernel = 3\nimage = [8, 8]";
    training_config(CNN_STEPS, cnn, "[optimizer.sgd]\nlr = 0.05\nmomentum = 0.9")
}

/// The instants of the progress reports `first` and `last` of one run.
struct Window {
    first: u64,
    last: u64,
    marks: Mutex<Vec<Instant>>,
}

impl Window {
    fn new(first: u64, last: u64) -> Window {
        Window { first, last, marks: Mutex::default() }
    }

    fn on_progress(&self, progress: Progress) {
        if let Progress::Step { done, .. } = progress
            && (done == self.first || done == self.last)
            && let Ok(mut marks) = self.marks.lock()
        {
            marks.push(Instant::now());
        }
    }

    /// `items` per second over the window.
    fn rate(self, items: u64) -> Result<f64> {
        let marks = self.marks.into_inner().map_err(|_| anyhow::anyhow!("a progress report panicked"))?;
        let [start, end] = marks[..] else { bail!("the run did not report steps {} and {}", self.first, self.last) };
        Ok(items as f64 / (end - start).as_secs_f64())
    }
}

/// Runs one job to its end in a fresh directory holding `inputs`.
pub(crate) fn run_job(
    runtime: &dyn Runtime,
    kind: WorkloadKind,
    program: &[u8],
    inputs: &[(&str, &[u8])],
    args: &[String],
    limits: Limits,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (input, output) = (dir.path().join("input"), dir.path().join("output"));
    std::fs::create_dir(&input)?;
    std::fs::create_dir(&output)?;
    for (name, bytes) in inputs {
        std::fs::write(input.join(name), bytes)?;
    }
    let cancel = AtomicBool::new(false);
    let job = Job {
        kind,
        program,
        inputs: &input,
        output: &output,
        args,
        container: Default::default(),
        limits,
        progress,
        cancel: &cancel,
    };
    runtime.run(&job).with_context(|| format!("the {kind:?} job failed"))?;
    Ok(())
}

/// Training samples per second after the warm-up.
fn train(config: &str, steps: u64, device: &str) -> Result<f64> {
    let window = Window::new(WARM_UP, steps);
    let args = [format!("device={device}")];
    let inputs = [("digits.csv.gz", DIGITS_CSV_GZ)];
    let progress = |progress| window.on_progress(progress);
    run_job(&TrainRuntime::new(), WorkloadKind::Train, config.as_bytes(), &inputs, &args, LIMITS, &progress)?;
    window.rate((steps - WARM_UP) * TRAIN_BATCH)
}

/// Rows per second of the digits classifier on `engine`.
fn digits(onnx: &OnnxRuntime, engine: &str) -> Result<f64> {
    let pixels = npy::read(DIGITS_PIXELS)?;
    let tiles = DIGITS_ROWS.div_ceil(pixels.shape[0]);
    let row = pixels.data.len() / pixels.shape[0];
    let data = pixels.data.repeat(tiles)[..DIGITS_ROWS * row].to_vec();
    let many = npy::write(&Array { shape: vec![DIGITS_ROWS, pixels.shape[1]], data, ..pixels });
    let batches = (DIGITS_ROWS / DIGITS_BATCH) as u64;
    let window = Window::new(1, batches);
    let args = ["input=pixels.npy".to_string(), format!("batch={DIGITS_BATCH}"), format!("engine={engine}")];
    let progress = |progress| window.on_progress(progress);
    run_job(onnx, WorkloadKind::Onnx, DIGITS_MODEL, &[("pixels.npy", &many)], &args, LIMITS, &progress)?;
    window.rate((batches - 1) * DIGITS_BATCH as u64)
}

/// MiniLM sentence embeddings per second on `engine`.
fn sentences(onnx: &OnnxRuntime, model: &[u8], tokenizer: &[u8], engine: &str) -> Result<f64> {
    let text = made_up_sentences(MINILM_BATCHES * MINILM_BATCH, 30);
    let inputs = [("tokenizer.json", tokenizer), ("sentences.txt", text.as_bytes())];
    let args = ["pipeline=sentence-embedding", "tokenizer=tokenizer.json", "text=sentences.txt"];
    let mut args: Vec<String> = args.iter().map(ToString::to_string).collect();
    args.extend([format!("batch={MINILM_BATCH}"), format!("engine={engine}")]);
    let window = Window::new(1, MINILM_BATCHES as u64);
    let progress = |progress| window.on_progress(progress);
    run_job(onnx, WorkloadKind::Onnx, model, &inputs, &args, LIMITS, &progress)?;
    window.rate(((MINILM_BATCHES - 1) * MINILM_BATCH) as u64)
}

/// `count` lines of `words` words each, drawn by a linear congruential generator that
/// `bench/compare_runtime.py` repeats.
fn made_up_sentences(count: usize, words: usize) -> String {
    let mut state = 1u32;
    let mut text = String::new();
    for _ in 0..count {
        let line: Vec<&str> = (0..words)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                WORDS[(state >> 16) as usize % WORDS.len()]
            })
            .collect();
        text.push_str(&line.join(" "));
        text.push('\n');
    }
    text
}
