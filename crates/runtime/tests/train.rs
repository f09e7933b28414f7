//! The train runtime on the digits example and on tiny models: it learns, it is
//! reproducible from the seed, its checkpoints replay, and every way a task can be wrong
//! ends in a clear error.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ogpu_core::spec::{Limits, VerificationPolicy, WorkloadKind};
use ogpu_core::{BlobHash, Hash};
use ogpu_runtime::onnx::npy::{self, Array, DType};
use ogpu_runtime::train::{self, Distances};
use ogpu_runtime::{Job, Libraries, Outcome, Progress, Runtime, Runtimes, TaskError, TrainRuntime};
use serde_json::Value;

mod common;
use common::{available, bad_input, bad_output, invalid_program, refused, unsupported};

const EXAMPLE_SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/digits-train.toml");
const DIGITS_CONFIG: &str = include_str!("../../../examples/digits-train/mlp.toml");
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../examples/digits-train/digits.csv.gz");

const LIMITS: Limits = Limits { fuel: 1, memory_mb: 512, timeout_s: 120 };

/// A small digits run: short enough to repeat, long enough for a few segments.
const SHORT: &str = r#"
seed = 7
steps = 40
batch_size = 16
checkpoint_every = 10

[architecture.mlp]
hidden = [16]

[optimizer.adam]
lr = 0.01

[data]
format = "csv"
file = "digits.csv.gz"
classes = 10
scale = 16.0
train_rows = [0, 200]
eval_rows = [200, 300]
"#;

/// A job's directories as the agent stages them: `input/` with the inputs, `output/` empty.
struct Sandbox {
    root: tempfile::TempDir,
}

struct Run {
    result: Result<Outcome, TaskError>,
    losses: Vec<f64>,
    total: u64,
    /// The held-out accuracy reported at each checkpoint, by step.
    evals: Vec<(u64, f64)>,
}

impl Sandbox {
    fn new(inputs: &[(&str, &[u8])]) -> Sandbox {
        Sandbox { root: common::staged(inputs) }
    }

    fn digits() -> Sandbox {
        Sandbox::new(&[("digits.csv.gz", DIGITS_CSV_GZ)])
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn run(&self, program: &str) -> Result<Outcome, TaskError> {
        self.run_with(program, &[], LIMITS, &AtomicBool::new(false), |_| {}).result
    }

    /// Runs the job, calling `on_step` with each step as it is reported.
    fn run_with(
        &self,
        program: &str,
        args: &[&str],
        limits: Limits,
        cancel: &AtomicBool,
        on_step: impl Fn(u64) + Sync,
    ) -> Run {
        let steps = Mutex::new((Vec::new(), 0, Vec::new()));
        let progress = |p: Progress| match p {
            Progress::Step { done, total, metrics } => {
                let mut steps = steps.lock().unwrap();
                assert_eq!(done, steps.0.len() as u64 + 1, "steps are reported in order");
                assert_eq!(metrics[0].0, "loss");
                steps.0.push(metrics[0].1);
                steps.1 = total;
                if let Some((_, accuracy)) = metrics.iter().find(|(name, _)| *name == "eval_accuracy") {
                    steps.2.push((done, *accuracy));
                }
                on_step(done);
            }
            Progress::Log(line) => println!("{line}"),
        };
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        let (inputs, output) = (self.path("input"), self.path("output"));
        let job = Job {
            kind: WorkloadKind::Train,
            program: program.as_bytes(),
            inputs: &inputs,
            output: &output,
            args: &args,
            container: Default::default(),
            limits,
            progress: &progress,
            cancel,
        };
        let result = TrainRuntime::new().run(&job);
        let (losses, total, evals) = steps.into_inner().unwrap();
        Run { result, losses, total, evals }
    }

    fn metrics(&self) -> Value {
        serde_json::from_slice(&fs::read(self.path("output/metrics.json")).unwrap()).unwrap()
    }

    fn checkpoints(&self) -> PathBuf {
        self.path("output/checkpoints")
    }

    fn replay(&self, program: &str, segment: u32) -> Result<Distances, TaskError> {
        train::replay_segment(program.as_bytes(), &[], &self.path("input"), &self.checkpoints(), segment)
    }
}

fn paths(outcome: &Outcome) -> Vec<&str> {
    outcome.files.iter().map(|f| f.path.as_str()).collect()
}

/// The mean of the first and of the last `n` losses.
fn first_and_last(losses: &[f64], n: usize) -> (f64, f64) {
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    (mean(&losses[..n]), mean(&losses[losses.len() - n..]))
}

#[test]
fn the_digits_example_names_its_files_and_reaches_91_percent_on_unseen_rows() {
    let spec = ogpu_client::spec::resolve(Path::new(EXAMPLE_SPEC)).unwrap().spec;
    let workload = &spec.workload;
    assert_eq!(workload.kind, WorkloadKind::Train);
    assert_eq!(workload.program, BlobHash(Hash::of_bytes(DIGITS_CONFIG.as_bytes())), "program is blake3 of mlp.toml");
    let data = BlobHash(Hash::of_bytes(DIGITS_CSV_GZ));
    assert_eq!(workload.inputs.get("digits.csv.gz"), Some(&data), "the input is blake3 of digits.csv.gz");
    assert!(matches!(spec.verification, VerificationPolicy::ProofOfLearning { .. }));

    let sandbox = Sandbox::digits();
    let args: Vec<&str> = workload.args.iter().map(String::as_str).collect();
    let run = sandbox.run_with(DIGITS_CONFIG, &args, workload.limits, &AtomicBool::new(false), |_| {});
    let outcome = run.result.unwrap();
    let metrics = sandbox.metrics();
    println!("digits: {metrics}");
    let accuracy = metrics["eval_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.91, "eval accuracy {accuracy} on rows 1500..1796");
    assert_eq!(metrics["eval_samples"], 297);
    assert_eq!(run.losses.len() as u64, run.total);
    let evaluated: Vec<u64> = run.evals.iter().map(|(step, _)| *step).collect();
    assert_eq!(evaluated, (1..=8).map(|i| i * 150).collect::<Vec<_>>(), "accuracy is streamed at each checkpoint");
    assert_eq!(run.evals.last().map(|(_, a)| *a), Some(accuracy), "the last is the delivered model's");
    let (first, last) = first_and_last(&run.losses, 50);
    assert!(last < first / 5.0, "the loss fell from {first} to {last}");

    let steps = metrics["steps"].as_u64().unwrap();
    let checkpoints = (steps / 150 + 1) as usize;
    let mut expected: Vec<String> = (0..checkpoints).map(|i| format!("checkpoints/{i:04}.safetensors")).collect();
    expected.extend(["metrics.json", "model.safetensors", "trace.json"].map(String::from));
    assert_eq!(paths(&outcome), expected);
    let trace: Value = serde_json::from_slice(&fs::read(sandbox.path("output/trace.json")).unwrap()).unwrap();
    let claimed = outcome.trace.unwrap();
    assert_eq!(trace["root"].as_str().unwrap(), claimed.root.to_hex());
    assert_eq!(claimed.checkpoints as usize, checkpoints);
    assert_eq!(trace["checkpoints"], checkpoints);
    // The trace's leaves are the delivered checkpoints' blob hashes, then the data order.
    let mut leaves: Vec<Hash> = outcome.files[..checkpoints].iter().map(|f| f.hash.0).collect();
    leaves.push(trace["data_order"].as_str().unwrap().parse().unwrap());
    assert_eq!(ogpu_core::merkle::root(&leaves), claimed.root);
    // What a verifier checks before replaying: the delivered checkpoints make the trace.
    let hashes: Vec<Hash> = leaves[..checkpoints].to_vec();
    train::check_trace(DIGITS_CONFIG.as_bytes(), &claimed, &hashes).unwrap();
    let mut swapped = hashes.clone();
    swapped.swap(1, 2);
    refused(
        train::check_trace(DIGITS_CONFIG.as_bytes(), &claimed, &swapped),
        bad_output,
        "do not make the committed trace",
    );
    refused(train::check_trace(DIGITS_CONFIG.as_bytes(), &claimed, &hashes[1..]), bad_output, "the 8 delivered");
    let other_order = DIGITS_CONFIG.replace("seed = 1", "seed = 2");
    refused(train::check_trace(other_order.as_bytes(), &claimed, &hashes), bad_output, "committed trace");
}

#[test]
fn the_same_seed_gives_the_same_checkpoints_and_root_and_another_seed_does_not() {
    let (a, b, c) = (Sandbox::digits(), Sandbox::digits(), Sandbox::digits());
    let first = a.run(SHORT).unwrap();
    let again = b.run(SHORT).unwrap();
    assert_eq!(first.files, again.files, "every checkpoint, the model and the metrics are bit-identical");
    assert_eq!((first.output, first.trace), (again.output, again.trace));
    assert_eq!(paths(&first).iter().filter(|p| p.starts_with("checkpoints/")).count(), 5);

    let other = c.run(&SHORT.replace("seed = 7", "seed = 8")).unwrap();
    assert_ne!(other.trace, first.trace);
    assert_ne!(other.files[0].hash, first.files[0].hash, "the initial parameters differ");
}

#[test]
fn a_replayed_segment_lands_exactly_on_the_committed_checkpoint() {
    let sandbox = Sandbox::digits();
    sandbox.run(SHORT).unwrap();
    for segment in [0, 2, 3] {
        let distances = sandbox.replay(SHORT, segment).unwrap();
        assert_eq!(distances, Distances { l2: 0.0, linf: 0.0, cosine: 0.0, relative_l2: 0.0 }, "segment {segment}");
    }
    refused(sandbox.replay(SHORT, 4), bad_input, "segment 4 does not exist: the run has 4 segments");
    // Claiming the checkpoints came from another seed's data order is caught as well.
    let distances = sandbox.replay(&SHORT.replace("seed = 7", "seed = 9"), 1).unwrap();
    assert!(distances.relative_l2 > 1e-3, "{distances:?}");
}

#[test]
fn a_tampered_checkpoint_is_far_from_its_replay() {
    let sandbox = Sandbox::digits();
    sandbox.run(SHORT).unwrap();
    // Tensors are stored sorted by name, so the file ends with the last value of a
    // parameter (param/... sorts after the optimizer state).
    let end = sandbox.checkpoints().join("0002.safetensors");
    let mut bytes = fs::read(&end).unwrap();
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&100.0f32.to_le_bytes());
    fs::write(&end, &bytes).unwrap();
    let distances = sandbox.replay(SHORT, 1).unwrap();
    assert!(distances.linf > 50.0 && distances.l2 > 50.0, "{distances:?}");

    // A forged start (another run's checkpoint) replays to somewhere else entirely.
    let other = Sandbox::digits();
    other.run(&SHORT.replace("seed = 7", "seed = 8")).unwrap();
    fs::copy(other.checkpoints().join("0002.safetensors"), sandbox.checkpoints().join("0002.safetensors")).unwrap();
    let distances = sandbox.replay(SHORT, 2).unwrap();
    assert!(distances.relative_l2 > 0.1 && distances.cosine > 0.01, "{distances:?}");

    // A checkpoint that is not one, or is of the wrong step, is refused.
    fs::write(sandbox.checkpoints().join("0001.safetensors"), b"not a checkpoint").unwrap();
    refused(sandbox.replay(SHORT, 1), bad_input, "not a training checkpoint");
    fs::copy(sandbox.checkpoints().join("0003.safetensors"), sandbox.checkpoints().join("0001.safetensors")).unwrap();
    refused(sandbox.replay(SHORT, 1), bad_input, "its first checkpoint is of step 30");
}

/// A small CNN on the digits, with SGD and momentum.
const CNN: &str = r#"
    seed = 3
    steps = 40
    batch_size = 16
    checkpoint_every = 20
    [architecture.cnn]
    channels = [4, 8]
    kernel = 3
    image = [8, 8]
    [optimizer.sgd]
    lr = 0.05
    momentum = 0.9
    [data]
    format = "csv"
    file = "digits.csv.gz"
    classes = 10
    scale = 16.0
    train_rows = [0, 400]
    eval_rows = [400, 500]
"#;

#[test]
fn a_small_cnn_lowers_its_loss() {
    let sandbox = Sandbox::digits();
    let run = sandbox.run_with(CNN, &[], LIMITS, &AtomicBool::new(false), |_| {});
    let outcome = run.result.unwrap();
    assert!(outcome.trace.is_some());
    let (first, last) = first_and_last(&run.losses, 5);
    assert!(last < first * 0.8, "the CNN's loss went from {first} to {last}");
    assert_eq!(sandbox.replay(CNN, 1).unwrap().l2, 0.0, "SGD momentum is in the checkpoint");
}

/// A one-block character transformer and the text it learns.
fn char_transformer() -> (String, Sandbox) {
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    let config = format!(
        r#"
        seed = 5
        steps = 30
        batch_size = 8
        checkpoint_every = 10
        [architecture.char_transformer]
        layers = 1
        heads = 2
        dim = 16
        context = 12
        [optimizer.adam]
        lr = 0.01
        [data]
        format = "text"
        file = "text.txt"
        train_rows = [0, 1500]
        eval_rows = [1500, {}]
    "#,
        text.len()
    );
    (config, Sandbox::new(&[("text.txt", text.as_bytes())]))
}

#[test]
fn a_tiny_char_transformer_lowers_its_loss() {
    let (config, sandbox) = char_transformer();
    let run = sandbox.run_with(&config, &[], LIMITS, &AtomicBool::new(false), |_| {});
    run.result.unwrap();
    let (first, last) = first_and_last(&run.losses, 5);
    assert!(last < first * 0.8, "the transformer's loss went from {first} to {last}");
    let metrics = sandbox.metrics();
    // 300 bytes of eval text: 24 windows of 12 positions.
    assert_eq!(metrics["eval_samples"], 24 * 12);
    assert_eq!(sandbox.replay(&config, 2).unwrap().l2, 0.0);
}

/// Rows 0..n of the digits as float32 features and int64 labels.
fn digits_arrays(n: usize) -> (Vec<f32>, Vec<i64>) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ).read_to_string(&mut text).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in text.lines().take(n) {
        let values: Vec<f32> = line.split(',').map(|v| v.parse().unwrap()).collect();
        x.extend_from_slice(&values[..64]);
        y.push(values[64] as i64);
    }
    (x, y)
}

#[test]
fn npy_and_safetensors_datasets_train_like_csv() {
    let csv = Sandbox::digits();
    csv.run(SHORT).unwrap();
    let expected = csv.metrics();

    let (x, y) = digits_arrays(300);
    let x_bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let y_bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    let features = npy::write(&Array { dtype: DType::F32, shape: vec![300, 8, 8], data: x_bytes.clone() });
    let labels = npy::write(&Array { dtype: DType::I64, shape: vec![300], data: y_bytes.clone() });
    let npy_config = SHORT
        .replace("file = \"digits.csv.gz\"", "features = \"x.npy\"\nlabels = \"y.npy\"")
        .replace("format = \"csv\"", "format = \"npy\"");
    let sandbox = Sandbox::new(&[("x.npy", &features), ("y.npy", &labels)]);
    sandbox.run(&npy_config).unwrap();
    assert_eq!(sandbox.metrics(), expected, "the same rows give the same run");

    let view = |dtype, shape, bytes| safetensors::tensor::TensorView::new(dtype, shape, bytes).unwrap();
    let tensors = safetensors::serialize(
        [
            ("x", view(safetensors::Dtype::F32, vec![300, 64], &x_bytes)),
            ("y", view(safetensors::Dtype::I64, vec![300], &y_bytes)),
        ],
        None,
    )
    .unwrap();
    let st_config = SHORT
        .replace("file = \"digits.csv.gz\"", "file = \"d.safetensors\"\nfeatures = \"x\"\nlabels = \"y\"")
        .replace("format = \"csv\"", "format = \"safetensors\"");
    let sandbox = Sandbox::new(&[("d.safetensors", &tensors)]);
    sandbox.run(&st_config).unwrap();
    assert_eq!(sandbox.metrics(), expected);
    let missing = st_config.replace("labels = \"y\"", "labels = \"labels\"");
    refused(Sandbox::new(&[("d.safetensors", &tensors)]).run(&missing), bad_input, "has no tensor \"labels\"");
}

#[test]
fn malformed_configs_and_data_are_refused_with_clear_errors() {
    let sandbox = Sandbox::digits();
    let run = |config: &str| sandbox.run(config);
    refused(run(&SHORT.replace("[architecture.mlp]", "[architecture.rnn]")), invalid_program, "unknown variant `rnn`");
    refused(run(&SHORT.replace("batch_size = 16", "batch_size = 0")), invalid_program, "batch_size must be 1 to");
    refused(run(&SHORT.replace("[0, 200]", "[200, 100]")), invalid_program, "train_rows must be a range");
    refused(run(&SHORT.replace("[200, 300]", "[200, 3000]")), bad_input, "[200, 3000), but the data has 1797 rows");
    refused(run(&SHORT.replace("digits.csv.gz", "absent.csv")), bad_input, "no input of that name");
    refused(run(&SHORT.replace("digits.csv.gz", "../digits.csv.gz")), bad_input, "not a plain file name");
    refused(run(&SHORT.replace("classes = 10", "classes = 5")), bad_input, "label \"5\" is not a class 0..5");
    refused(run("seed = "), invalid_program, "the training config is not valid");
    refused(run(&SHORT.replace("lr = 0.01", "lr = 1e30")), invalid_program, "training diverged");
    assert_eq!(fs::read_dir(sandbox.path("output")).unwrap().count(), 0, "a failed run delivers nothing");

    let corrupt = Sandbox::new(&[("digits.csv", b"1,2,3\n4,oops,1\n"), ("digits.csv.gz", b"not gzip")]);
    refused(corrupt.run(&SHORT.replace("digits.csv.gz", "digits.csv")), bad_input, "digits.csv line 2 column 2");
    refused(corrupt.run(SHORT), bad_input, "digits.csv.gz is not a gzip file");

    // A backend this build lacks is named with the feature that brings it.
    let on = |device: &str| sandbox.run_with(SHORT, &[device], LIMITS, &AtomicBool::new(false), |_| {}).result;
    if !cfg!(feature = "cuda") {
        refused(on("device=cuda"), unsupported, "cuda feature");
    }
    if !cfg!(feature = "wgpu") {
        refused(on("device=wgpu"), unsupported, "wgpu feature");
    }
    refused(on("device=tpu"), bad_input, "device=tpu is not a device");
    // What a provider asks before bidding, without running anything.
    let runtime = TrainRuntime::new();
    assert_eq!(runtime.accepts(&["device=cpu".into()], 0), Ok(()));
    refused(runtime.accepts(&["device=tpu".into()], 0), bad_input, "device=tpu is not a device");
    if !cfg!(feature = "cuda") || !ogpu_runtime::gpu::cuda_driver() {
        refused(runtime.accepts(&["device=cuda".into()], 0), unsupported, "device=cuda");
    }
    let tiny = Limits { memory_mb: 1, ..LIMITS };
    let big = SHORT.replace("hidden = [16]", "hidden = [4096, 4096]");
    let run = sandbox.run_with(&big, &[], tiny, &AtomicBool::new(false), |_| {});
    assert_eq!(run.result, Err(TaskError::MemoryLimit { limit_mb: 1 }));
}

#[test]
fn cancellation_and_the_time_limit_stop_between_steps() {
    let sandbox = Sandbox::digits();
    let cancel = AtomicBool::new(true);
    assert_eq!(sandbox.run_with(SHORT, &[], LIMITS, &cancel, |_| {}).result, Err(TaskError::Cancelled));

    let cancel = AtomicBool::new(false);
    let run = sandbox.run_with(SHORT, &[], LIMITS, &cancel, |done| {
        if done == 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    assert_eq!(run.result, Err(TaskError::Cancelled));
    assert_eq!(run.losses.len(), 3, "stopped right after the step that saw the flag");
    assert_eq!(fs::read_dir(sandbox.path("output")).unwrap().count(), 0, "nothing is delivered");

    let no_time = Limits { timeout_s: 0, ..LIMITS };
    let run = sandbox.run_with(SHORT, &[], no_time, &AtomicBool::new(false), |_| {});
    assert_eq!(run.result, Err(TaskError::Timeout { seconds: 0 }));
}

#[test]
fn the_registry_runs_train_jobs_and_the_runtime_refuses_other_kinds() {
    let runtimes = Runtimes::with_defaults(&Libraries::default()).unwrap();
    assert!(runtimes.kinds().any(|kind| kind == WorkloadKind::Train));
    let sandbox = Sandbox::digits();
    let (inputs, output): (PathBuf, PathBuf) = (sandbox.path("input"), sandbox.path("output"));
    let cancel = AtomicBool::new(false);
    let job = Job {
        kind: WorkloadKind::Onnx,
        program: SHORT.as_bytes(),
        inputs: &inputs,
        output: &output,
        args: &[],
        container: Default::default(),
        limits: LIMITS,
        progress: &|_| {},
        cancel: &cancel,
    };
    refused(TrainRuntime::new().run(&job), unsupported, "cannot run a onnx task");
    let outcome = runtimes.run(&Job { kind: WorkloadKind::Train, ..job }).unwrap();
    assert!(outcome.trace.is_some());
    assert!(Path::new(&output).join("model.safetensors").is_file());
}

/// A finished run's checkpoints, in order.
fn checkpoint_hashes(outcome: &Outcome) -> Vec<Hash> {
    outcome.files.iter().filter(|f| f.path.starts_with("checkpoints/")).map(|f| f.hash.0).collect()
}

#[test]
fn on_wgpu_the_same_seed_gives_the_same_checkpoints_and_cpu_segments_replay_within_tolerance() {
    let adapters = ogpu_runtime::gpu::wgpu_adapters();
    println!("wgpu adapters: {adapters:?}");
    if available("wgpu", !adapters.is_empty()) {
        check_gpu_backend("wgpu");
    }
}

#[test]
fn on_cuda_the_same_seed_gives_the_same_checkpoints_and_cpu_segments_replay_within_tolerance() {
    if available("cuda", ogpu_runtime::gpu::cuda_driver()) {
        check_gpu_backend("cuda");
    }
}

#[test]
fn gpus_are_measured_on_the_backend_that_trains_on_them_and_absent_ones_are_refused() {
    use ogpu_runtime::gpu::{AdapterKind, GpuTarget, matmul_flops, matmul_gflops, wgpu_adapters};
    let budget = std::time::Duration::from_millis(100);
    let adapters = wgpu_adapters();
    if available("wgpu", !adapters.is_empty()) {
        // The backend opens the first software adapter only (Mesa's lavapipe, here).
        for adapter in adapters.iter().filter(|a| a.kind.is_gpu() || (a.kind == AdapterKind::Software && a.index == 0))
        {
            // Unclamped: even a software rasterizer multiplies faster than 100 MFLOPS.
            let flops = matmul_flops(adapter.target(), budget).unwrap();
            println!("{} ({:?}): {:.1} GFLOPS", adapter.name, adapter.kind, flops / 1e9);
            assert!(flops > 1e8, "{flops} flops a second");
        }
    }
    let absent = GpuTarget::Wgpu { kind: AdapterKind::Discrete, index: 99 };
    refused(matmul_gflops(absent, budget), unsupported, "wgpu");
    if available("cuda", ogpu_runtime::gpu::cuda_driver()) {
        let flops = matmul_flops(GpuTarget::Cuda(0), budget).unwrap();
        assert!(flops > 1e9, "{flops} flops a second");
    } else {
        let why = if cfg!(feature = "cuda") { "no CUDA driver" } else { "cuda feature" };
        refused(matmul_gflops(GpuTarget::Cuda(0), budget), unsupported, why);
    }
}

/// Each architecture on the GPU backend `device`: two runs give the same bytes, the initial
/// model is the CPU's, and a verifier on the GPU replays a segment the CPU committed close
/// to where the CPU landed.
fn check_gpu_backend(device: &str) {
    let (transformer, text) = char_transformer();
    let digits = || Sandbox::digits();
    let text = || Sandbox::new(&[("text.txt", &fs::read(text.path("input/text.txt")).unwrap())]);
    let cases: [(&str, &str, &dyn Fn() -> Sandbox); 3] =
        [("mlp", SHORT, &digits), ("cnn", CNN, &digits), ("char transformer", &transformer, &text)];
    let on_gpu = format!("device={device}");
    for (name, config, sandbox) in cases {
        let run = |sandbox: &Sandbox, args: &[&str]| {
            sandbox.run_with(config, args, LIMITS, &AtomicBool::new(false), |_| {}).result.unwrap()
        };
        let (a, b, cpu) = (sandbox(), sandbox(), sandbox());
        let first = run(&a, &[&on_gpu]);
        let again = run(&b, &[&on_gpu]);
        assert_eq!(first.files, again.files, "{name}: every checkpoint is bit-identical run to run");
        assert_eq!(first.trace, again.trace);
        let on_cpu = run(&cpu, &[]);
        let (gpu_hashes, cpu_hashes) = (checkpoint_hashes(&first), checkpoint_hashes(&on_cpu));
        assert_eq!(gpu_hashes[0], cpu_hashes[0], "{name}: the initial model is the same bytes on every backend");
        println!(
            "{name}: eval accuracy {device} {}, cpu {}",
            a.metrics()["eval_accuracy"],
            cpu.metrics()["eval_accuracy"]
        );
        // Floats land close, not on the same bits. Measured on Mesa's lavapipe: relative L2
        // 4e-8 (MLP), 2e-7 (CNN), 8e-5 (the transformer, whose Adam steps magnify the last
        // bits); a task's tolerance is ~1e-2.
        let args = [on_gpu.clone()];
        let replayed = train::replay_segment(config.as_bytes(), &args, &cpu.path("input"), &cpu.checkpoints(), 1);
        let replayed = replayed.unwrap();
        println!("{name}: segment 1 committed on the cpu, replayed on {device}: {replayed:?}");
        assert!(replayed.relative_l2 < 1e-3, "{name}: {replayed:?}");
    }
}
