//! Throughput of the onnx runtime, end to end through `OnnxRuntime::run` (parsing the
//! model, optimizing it for the batch shapes, tokenizing, writing `.npy`):
//!
//! ```text
//! cargo run -p ogpu-runtime --release --example onnx-bench [SHARED_DATA_DIR]
//! ```
//!
//! The digits classifier needs nothing but this repository; MiniLM is read from
//! `SHARED_DATA_DIR/minilm` (default: `shared/data` beside the workspace) and skipped when
//! absent. Each figure is the best of three runs.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use std::{env, fs};

use ogpu_core::spec::{Limits, WorkloadKind};
use ogpu_runtime::onnx::npy::{self, Array};
use ogpu_runtime::{Job, OnnxRuntime, Runtime};

const DIGITS_MODEL: &[u8] = include_bytes!("../../../examples/digits-infer/digits_mlp.onnx");
const DIGITS_PIXELS: &[u8] = include_bytes!("../../../examples/digits-infer/pixels.npy");
const LIMITS: Limits = Limits { fuel: 1, memory_mb: 4096, timeout_s: 600 };
/// Words for made-up sentences: each becomes one WordPiece token.
const WORDS: [&str; 24] = [
    "the", "network", "runs", "small", "models", "on", "idle", "cards", "and", "every", "verifier", "checks", "a",
    "share", "of", "results", "before", "payment", "is", "made", "to", "each", "honest", "provider",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shared = env::args()
        .nth(1)
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"), PathBuf::from);
    println!("{} cores", std::thread::available_parallelism()?.get());

    let pixels = npy::read(DIGITS_PIXELS)?;
    let tiles = 100;
    let many = Array { shape: vec![pixels.shape[0] * tiles, 64], data: pixels.data.repeat(tiles), ..pixels };
    let rows = many.shape[0];
    let inputs = [("pixels.npy", npy::write(&many))];
    for batch in [256, 2048] {
        let args = ["input=pixels.npy".to_string(), format!("batch={batch}")];
        let took = best_of_three(DIGITS_MODEL, &inputs, &args)?;
        println!("digits: {rows} rows, batch={batch}: {:.0} rows/s ({took:.2?})", rows as f64 / took.as_secs_f64());
    }

    let minilm = shared.join("minilm");
    let Ok(model) = fs::read(minilm.join("model.onnx")) else {
        println!("MiniLM: skipped, no model at {}", minilm.display());
        return Ok(());
    };
    let tokenizer = fs::read(minilm.join("tokenizer.json"))?;
    for (sentences, batch) in [(1, 1), (32, 32), (32, 16), (256, 32)] {
        let text = made_up_sentences(sentences, 30);
        let inputs = [("tokenizer.json", tokenizer.clone()), ("sentences.txt", text.into_bytes())];
        let args = ["pipeline=sentence-embedding", "tokenizer=tokenizer.json", "text=sentences.txt"];
        let mut args: Vec<String> = args.iter().map(ToString::to_string).collect();
        args.push(format!("batch={batch}"));
        let took = best_of_three(&model, &inputs, &args)?;
        println!(
            "MiniLM: {sentences} sentences of 32 tokens, batch={batch}: {:.0} sentences/s ({took:.2?})",
            sentences as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}

/// `count` lines of `words` words each (32 tokens with `[CLS]` and `[SEP]`).
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

fn best_of_three(
    program: &[u8],
    inputs: &[(&str, Vec<u8>)],
    args: &[String],
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("input"), dir.path().join("output"));
        fs::create_dir(&input)?;
        fs::create_dir(&output)?;
        for (name, bytes) in inputs {
            fs::write(input.join(name), bytes)?;
        }
        let job = Job {
            kind: WorkloadKind::Onnx,
            program,
            inputs: &input,
            output: &output,
            args,
            limits: LIMITS,
            progress: &|_| {},
            cancel: &AtomicBool::new(false),
        };
        let started = Instant::now();
        OnnxRuntime::new().run(&job)?;
        best = best.min(started.elapsed());
    }
    Ok(best)
}
