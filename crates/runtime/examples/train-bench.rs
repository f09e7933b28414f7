//! Training throughput of the train runtime, through `TrainRuntime::run`, for comparison
//! with other frameworks (PyTorch) on the same machine:
//!
//! ```text
//! cargo run -p ogpu-runtime --release --example train-bench [device=cpu|wgpu|cuda]
//! ```
//!
//! Prints one JSON object: for the digits MLP (64 -> 64 -> 10, Adam) and a small CNN
//! (8x8 images, convolutions of 8 and 16 channels with 3x3 kernels, SGD with momentum),
//! both at batch 32, the training samples per second over the timed steps. Time is taken
//! between progress reports, so loading the data, the checkpoints at the start and the end
//! and the final evaluation are left out; the first steps are a warm-up.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use std::{env, fs};

use ogpu_core::spec::{Limits, WorkloadKind};
use ogpu_runtime::{Job, Progress, Runtime, TrainRuntime};

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../examples/digits-train/digits.csv.gz");
const LIMITS: Limits = Limits { fuel: 1, memory_mb: 4096, timeout_s: 600 };
const WARM_UP: u64 = 20;
const BATCH: u64 = 32;

fn config(steps: u64, architecture: &str, optimizer: &str) -> String {
    format!(
        "seed = 1\nsteps = {steps}\nbatch_size = {BATCH}\ncheckpoint_every = {steps}\n{architecture}\n{optimizer}\n\
         [data]\nformat = \"csv\"\nfile = \"digits.csv.gz\"\nclasses = 10\nscale = 16.0\n\
         train_rows = [0, 1500]\neval_rows = [1500, 1797]\n"
    )
}

/// Samples per second over the steps after the warm-up.
fn samples_per_s(program: &str, steps: u64, args: &[String]) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (inputs, output) = (dir.path().join("input"), dir.path().join("output"));
    fs::create_dir(&inputs)?;
    fs::create_dir(&output)?;
    fs::write(inputs.join("digits.csv.gz"), DIGITS_CSV_GZ)?;
    let marks = Mutex::new(Vec::new());
    let progress = |p: Progress| {
        if let Progress::Step { done, .. } = p
            && (done == WARM_UP || done == steps)
            && let Ok(mut marks) = marks.lock()
        {
            marks.push(Instant::now());
        }
    };
    let cancel = AtomicBool::new(false);
    let job = Job {
        kind: WorkloadKind::Train,
        program: program.as_bytes(),
        inputs: &inputs,
        output: &output,
        args,
        limits: LIMITS,
        progress: &progress,
        cancel: &cancel,
    };
    TrainRuntime::new().run(&job)?;
    let marks = marks.into_inner().map_err(|_| "poisoned")?;
    let [start, end] = marks[..] else { return Err("missing progress reports".into()) };
    Ok(((steps - WARM_UP) * BATCH) as f64 / (end - start).as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = env::args().skip(1).collect();
    let device = args.first().map_or("device=cpu", String::as_str).trim_start_matches("device=").to_string();
    let mlp_steps = 1_000;
    let mlp = config(mlp_steps, "[architecture.mlp]\nhidden = [64]", "[optimizer.adam]\nlr = 0.002");
    let cnn_steps = 200;
    let cnn = config(
        cnn_steps,
        "[architecture.cnn]\nchannels = [8, 16]\nkernel = 3\nimage = [8, 8]",
        "[optimizer.sgd]\nlr = 0.05\nmomentum = 0.9",
    );
    let mlp_rate = samples_per_s(&mlp, mlp_steps, &args)?;
    let cnn_rate = samples_per_s(&cnn, cnn_steps, &args)?;
    let report = serde_json::json!({
        "device": device,
        "threads": std::thread::available_parallelism()?.get(),
        "batch_size": BATCH,
        "digits_mlp": { "layers": [64, 64, 10], "optimizer": "adam", "steps_timed": mlp_steps - WARM_UP,
                        "samples_per_s": mlp_rate.round() },
        "digits_cnn": { "channels": [1, 8, 16], "kernel": 3, "image": [8, 8], "optimizer": "sgd+momentum",
                        "steps_timed": cnn_steps - WARM_UP, "samples_per_s": cnn_rate.round() },
    });
    println!("{report:#}");
    Ok(())
}
