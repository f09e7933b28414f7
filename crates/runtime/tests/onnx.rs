//! The onnx runtime against reference outputs from onnxruntime: a small digits classifier
//! (its model and cases copied into the repository) and the all-MiniLM-L6-v2 sentence
//! encoder from `../shared/data/minilm` (skipped where that is absent), then every way a
//! task can be wrong. Each runs on tract and, where this build has the `ort` feature and
//! `OGPU_ONNXRUNTIME` names a `libonnxruntime.so`, on onnxruntime too.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use ogpu_core::spec::{Limits, WorkloadKind};
use ogpu_core::{BlobHash, Hash};
use ogpu_runtime::onnx::npy::{self, Array, DType};
use ogpu_runtime::{Job, Libraries, OnnxRuntime, Outcome, Progress, Runtime, Runtimes, TaskError};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

mod common;
use common::{available, bad_input, invalid_program, refused, unsupported};

const DIGITS_MODEL: &[u8] = include_bytes!("../../../examples/digits-infer/digits_mlp.onnx");
const DIGITS_CASES: &str = include_str!("data/digits_mlp.cases.json");
const EXAMPLE_SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/digits-infer.toml");
const EXAMPLE_PIXELS: &[u8] = include_bytes!("../../../examples/digits-infer/pixels.npy");
const EXAMPLE_LABELS: &[u8] = include_bytes!("../../../examples/digits-infer/labels.npy");

const LIMITS: Limits = Limits { fuel: 1, memory_mb: 1024, timeout_s: 60 };

/// The runtime every test runs on, and whether it has onnxruntime.
static RUNTIME: LazyLock<(OnnxRuntime, bool)> = LazyLock::new(runtime);

#[cfg(feature = "ort")]
fn runtime() -> (OnnxRuntime, bool) {
    use ogpu_runtime::onnx::OrtLibrary;
    match std::env::var_os("OGPU_ONNXRUNTIME") {
        Some(path) => (OnnxRuntime::with_onnxruntime(OrtLibrary::load(Path::new(&path)).unwrap()), true),
        None => (OnnxRuntime::new(), false),
    }
}

#[cfg(not(feature = "ort"))]
fn runtime() -> (OnnxRuntime, bool) {
    (OnnxRuntime::new(), false)
}

/// The engines to test on: tract, and onnxruntime where it is here.
fn engines() -> Vec<&'static str> {
    let mut engines = vec!["engine=tract"];
    if available("onnxruntime", RUNTIME.1) {
        engines.push("engine=ort");
    }
    engines
}

/// `args` and `engine`, as the owned strings a job takes.
fn with_engine(args: &[&str], engine: &str) -> Vec<String> {
    args.iter().chain([&engine]).map(ToString::to_string).collect()
}

/// A job's directories as the agent stages them: `input/` with the inputs, `output/` empty.
struct Sandbox {
    root: tempfile::TempDir,
}

struct Run {
    result: Result<Outcome, TaskError>,
    steps: Vec<(u64, u64)>,
}

impl Sandbox {
    fn new(inputs: &[(&str, &[u8])]) -> Sandbox {
        Sandbox { root: common::staged(inputs) }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn run(&self, program: &[u8], args: &[&str]) -> Result<Outcome, TaskError> {
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        self.run_with(program, &args, LIMITS, &AtomicBool::new(false), |_| {}).result
    }

    /// Runs the job, calling `on_step` with each step as it is reported.
    fn run_with(
        &self,
        program: &[u8],
        args: &[String],
        limits: Limits,
        cancel: &AtomicBool,
        on_step: impl Fn(u64) + Sync,
    ) -> Run {
        let steps = Mutex::new(Vec::new());
        let progress = |p: Progress| match p {
            Progress::Step { done, total, metrics } if metrics.is_empty() => {
                steps.lock().unwrap().push((done, total));
                on_step(done);
            }
            other => panic!("unexpected progress {other:?}"),
        };
        let (inputs, output) = (self.path("input"), self.path("output"));
        let job = Job {
            kind: WorkloadKind::Onnx,
            program,
            inputs: &inputs,
            output: &output,
            args,
            container: Default::default(),
            limits,
            progress: &progress,
            cancel,
        };
        let result = RUNTIME.0.run(&job);
        Run { result, steps: steps.into_inner().unwrap() }
    }

    fn output(&self, name: &str) -> Array {
        npy::read(&fs::read(self.path("output").join(name)).unwrap()).unwrap()
    }
}

fn f32s(array: &Array) -> Vec<f32> {
    assert_eq!(array.dtype, DType::F32);
    array.data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn i64s(array: &Array) -> Vec<i64> {
    assert_eq!(array.dtype, DType::I64);
    array.data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
}

fn f32_array(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy::write(&Array { dtype: DType::F32, shape: shape.to_vec(), data })
}

fn i64_array(shape: &[usize], values: &[i64]) -> Vec<u8> {
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy::write(&Array { dtype: DType::I64, shape: shape.to_vec(), data })
}

fn numbers<T>(value: &Value, each: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    // Flattens nested arrays in row-major order.
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            leaf => out.push(each(leaf).expect("a number")),
        }
    }
    out
}

fn floats(value: &Value) -> Vec<f32> {
    numbers(value, |v| v.as_f64().map(|f| f as f32))
}

fn tolerance(cases: &Value) -> f32 {
    cases["tolerance"]["abs"].as_f64().expect("the cases state an absolute tolerance") as f32
}

/// The largest element-wise difference, after checking the lengths agree.
fn max_difference(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len());
    got.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

struct Digits {
    pixels: Vec<u8>,
    labels: Vec<i64>,
    probabilities: Vec<f32>,
    tolerance: f32,
}

fn digits() -> Digits {
    let cases: Value = serde_json::from_str(DIGITS_CASES).unwrap();
    let pixels = floats(&cases["inputs"]);
    assert_eq!(pixels.len(), 32 * 64);
    Digits {
        pixels: f32_array(&[32, 64], &pixels),
        labels: numbers(&cases["expected_labels"], Value::as_i64),
        probabilities: floats(&cases["expected_probabilities"]),
        tolerance: tolerance(&cases),
    }
}

#[test]
fn digits_match_onnxruntime_in_one_batch_or_many() {
    for engine in engines() {
        digits_match_the_reference(engine);
    }
}

fn digits_match_the_reference(engine: &str) {
    let digits = digits();
    let mut hashes = Vec::new();
    for batch in ["32", "5"] {
        let sandbox = Sandbox::new(&[("pixels.npy", &digits.pixels)]);
        let args = with_engine(&["input=pixels.npy", &format!("batch={batch}")], engine);
        let run = sandbox.run_with(DIGITS_MODEL, &args, LIMITS, &AtomicBool::new(false), |_| {});
        let outcome = run.result.unwrap();
        let paths: Vec<&str> = outcome.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["label.npy", "probabilities.npy"], "every output, by its ONNX name");
        let (labels, probabilities) = (sandbox.output("label.npy"), sandbox.output("probabilities.npy"));
        assert_eq!((labels.shape.as_slice(), probabilities.shape.as_slice()), ([32].as_slice(), [32, 10].as_slice()));
        assert_eq!(i64s(&labels), digits.labels, "batch={batch}");
        let difference = max_difference(&f32s(&probabilities), &digits.probabilities);
        println!("digits, {engine}, batch={batch}: probabilities within {difference:e} of onnxruntime's");
        assert!(difference <= digits.tolerance, "batch={batch}: probabilities differ by {difference}");
        let batches = 32u64.div_ceil(batch.parse().unwrap());
        assert_eq!(run.steps, (1..=batches).map(|done| (done, batches)).collect::<Vec<_>>());
        hashes.push(outcome.output);
    }
    let again = Sandbox::new(&[("pixels.npy", &digits.pixels)]);
    assert_eq!(again.run(DIGITS_MODEL, &["input=pixels.npy", "batch=32", engine]).unwrap().output, hashes[0]);
}

#[test]
fn tensors_can_come_and_go_as_safetensors() {
    let digits = digits();
    let pixels = npy::read(&digits.pixels).unwrap();
    let other = Array::of(&[1], &[7i64]);
    let views = [("input", &pixels), ("unused", &other)].map(|(name, array)| {
        let dtype = if array.dtype == DType::F32 { Dtype::F32 } else { Dtype::I64 };
        (name, TensorView::new(dtype, array.shape.clone(), &array.data).unwrap())
    });
    let file = safetensors::serialize(views, None::<std::collections::HashMap<String, String>>).unwrap();
    for engine in engines() {
        let sandbox = Sandbox::new(&[("digits.safetensors", &file)]);
        sandbox.run(DIGITS_MODEL, &["input=input:digits.safetensors", "format=safetensors", engine]).unwrap();
        let bytes = fs::read(sandbox.path("output/label.safetensors")).unwrap();
        let labels = SafeTensors::deserialize(&bytes).unwrap();
        let labels = labels.tensor("label").unwrap();
        assert_eq!((labels.dtype(), labels.shape()), (Dtype::I64, [32].as_slice()));
        let labels: Vec<i64> =
            labels.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(labels, digits.labels, "{engine}");
        assert!(sandbox.path("output/probabilities.safetensors").is_file());
    }
}

#[test]
fn outputs_can_be_picked_by_name_and_inputs_bound_by_name() {
    let digits = digits();
    let sandbox = Sandbox::new(&[("pixels.npy", &digits.pixels)]);
    let outcome = sandbox.run(DIGITS_MODEL, &["input=input:pixels.npy", "output=label"]).unwrap();
    assert_eq!(outcome.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["label.npy"]);
    assert_eq!(i64s(&sandbox.output("label.npy")), digits.labels);
}

#[test]
fn the_example_spec_names_the_example_files_and_classifies_unseen_digits() {
    let spec = ogpu_client::spec::resolve(Path::new(EXAMPLE_SPEC)).unwrap().spec;
    let workload = &spec.workload;
    assert_eq!(workload.kind, WorkloadKind::Onnx);
    assert_eq!(workload.program, BlobHash(Hash::of_bytes(DIGITS_MODEL)), "program is blake3 of digits_mlp.onnx");
    let pixels = BlobHash(Hash::of_bytes(EXAMPLE_PIXELS));
    assert_eq!(workload.inputs.get("pixels.npy"), Some(&pixels), "pixels.npy is blake3 of the example's pixels.npy");

    let sandbox = Sandbox::new(&[("pixels.npy", EXAMPLE_PIXELS)]);
    let cancel = AtomicBool::new(false);
    let run = sandbox.run_with(DIGITS_MODEL, &workload.args, workload.limits, &cancel, |_| {});
    run.result.unwrap();
    let predicted = i64s(&sandbox.output("label.npy"));
    let truth = i64s(&npy::read(EXAMPLE_LABELS).unwrap());
    let correct = predicted.iter().zip(&truth).filter(|(p, t)| p == t).count();
    // The accuracy the data's README gives for these 297 rows the model never saw.
    assert_eq!((correct, truth.len()), (272, 297));
}

/// `../shared/data/minilm`, or `None` (with a message) where this checkout lacks it.
fn minilm() -> Option<(Vec<u8>, Vec<u8>, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/minilm");
    let model = fs::read(dir.join("model.onnx"));
    if !available("shared-data", model.is_ok()) {
        return None;
    }
    let model = model.ok()?;
    let tokenizer = fs::read(dir.join("tokenizer.json")).unwrap();
    let cases = serde_json::from_str(&fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    Some((model, tokenizer, cases))
}

#[test]
fn minilm_sentence_embeddings_match_the_reference_with_any_batching() {
    let Some((model, tokenizer, cases)) = minilm() else { return };
    let sentences: Vec<&str> = cases["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let text = sentences.join("\n") + "\n";
    let expected = floats(&cases["expected_embeddings"]);
    for (engine, batch) in engines().into_iter().flat_map(|engine| [(engine, "8"), (engine, "3")]) {
        let sandbox = Sandbox::new(&[("tokenizer.json", &tokenizer), ("sentences.txt", text.as_bytes())]);
        let args = ["pipeline=sentence-embedding", "tokenizer=tokenizer.json", "text=sentences.txt"];
        let args = with_engine(&[&args[..], &[&format!("batch={batch}")]].concat(), engine);
        let run = sandbox.run_with(&model, &args, LIMITS, &AtomicBool::new(false), |_| {});
        let outcome = run.result.unwrap();
        assert_eq!(outcome.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["embeddings.npy"]);
        let embeddings = sandbox.output("embeddings.npy");
        assert_eq!(embeddings.shape, [8, 384]);
        let difference = max_difference(&f32s(&embeddings), &expected);
        println!("MiniLM, {engine}, batch={batch}: embeddings within {difference:e} of the reference");
        assert!(difference <= tolerance(&cases), "{engine}, batch={batch}: embeddings differ by {difference}");
    }
}

#[test]
fn minilm_runs_as_plain_tensors_too() {
    let Some((model, _, cases)) = minilm() else { return };
    let shape: Vec<usize> = numbers(&cases["input_shape"], |v| v.as_u64().map(|n| n as usize));
    let mut inputs = Vec::new();
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        inputs.push((format!("{name}.npy"), i64_array(&shape, &numbers(&cases["inputs"][name], Value::as_i64))));
    }
    let staged: Vec<(&str, &[u8])> = inputs.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())).collect();
    for engine in engines() {
        let sandbox = Sandbox::new(&staged);
        let args = [
            "input=input_ids:input_ids.npy",
            "input=attention_mask:attention_mask.npy",
            "input=token_type_ids:token_type_ids.npy",
            "batch=8",
            engine,
        ];
        sandbox.run(&model, &args).unwrap();
        let states = sandbox.output("last_hidden_state.npy");
        assert_eq!(states.shape, [8, 50, 384]);
        let first = &f32s(&states)[..8];
        let difference = max_difference(first, &floats(&cases["last_hidden_state_0_0_first8"]));
        assert!(difference <= tolerance(&cases), "{engine}: last_hidden_state[0][0][..8] differs by {difference}");
    }
}

#[test]
fn a_corrupt_or_truncated_model_is_an_invalid_program() {
    let digits = digits();
    let sandbox = Sandbox::new(&[("pixels.npy", &digits.pixels)]);
    // Bytes from a fixed stream that are no protobuf at all.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for engine in engines() {
        for program in [&noise[..], &DIGITS_MODEL[..DIGITS_MODEL.len() / 2], b""] {
            let result = sandbox.run(program, &["input=pixels.npy", engine]);
            assert!(
                matches!(&result, Err(TaskError::InvalidProgram(_))),
                "{engine}, {} bytes: {result:?}",
                program.len()
            );
        }
        refused(sandbox.run(b"", &["input=pixels.npy", engine]), invalid_program, "not an ONNX model");
    }
}

#[test]
fn an_operator_the_engine_lacks_is_unsupported() {
    // Renaming the op type (and node names that contain it) keeps the protobuf's lengths,
    // so the model still parses.
    let mut program = DIGITS_MODEL.to_vec();
    let mut renamed = 0;
    while let Some(at) = program.windows(4).position(|w| w == b"Relu") {
        program[at..at + 4].copy_from_slice(b"Relx");
        renamed += 1;
    }
    assert!(renamed > 0, "the model has a Relu");
    let sandbox = Sandbox::new(&[("pixels.npy", &digits().pixels)]);
    for engine in engines() {
        let result = sandbox.run(&program, &["input=pixels.npy", engine]);
        refused(result, unsupported, "Relx");
    }
}

#[test]
fn inputs_of_the_wrong_shape_or_type_are_refused_with_what_the_model_wants() {
    let narrow = f32_array(&[4, 63], &[0.5; 4 * 63]);
    let wide = npy::write(&Array { dtype: DType::F64, shape: vec![4, 64], data: vec![0; 4 * 64 * 8] });
    let flat = f32_array(&[64], &[0.5; 64]);
    let scalar = f32_array(&[], &[0.5]);
    let empty = f32_array(&[0, 64], &[]);
    let sandbox = Sandbox::new(&[
        ("narrow.npy", &narrow),
        ("wide.npy", &wide),
        ("flat.npy", &flat),
        ("scalar.npy", &scalar),
        ("empty.npy", &empty),
    ]);
    for engine in engines() {
        let run = |file: &str| sandbox.run(DIGITS_MODEL, &[&format!("input={file}"), engine]);
        let narrow = "float32 [4, 63] in a batch of 4 rows, but the model wants float32 [?, 64]";
        refused(run("narrow.npy"), bad_input, narrow);
        refused(run("wide.npy"), bad_input, "is float64 [4, 64]");
        refused(run("flat.npy"), bad_input, "float32 [32] in a batch of 32 rows");
        refused(run("scalar.npy"), bad_input, "scalar.npy holds a scalar");
        refused(run("empty.npy"), bad_input, "empty.npy has no rows");
    }
}

#[test]
fn a_missing_input_file_or_a_bad_npy_header_is_a_bad_input() {
    let mut bad_header = f32_array(&[2, 64], &[0.0; 128]);
    let at = bad_header.windows(3).position(|w| w == b"<f4").unwrap();
    bad_header[at..at + 3].copy_from_slice(b">f4");
    let sandbox = Sandbox::new(&[("big-endian.npy", &bad_header), ("text.npy", b"0.5, 0.5\n")]);
    refused(sandbox.run(DIGITS_MODEL, &["input=absent.npy"]), bad_input, "no input of that name");
    refused(sandbox.run(DIGITS_MODEL, &["input=../secret"]), bad_input, "not a plain file name");
    refused(
        sandbox.run(DIGITS_MODEL, &["input=big-endian.npy"]),
        bad_input,
        "big-endian.npy: .npy element type \">f4\"",
    );
    refused(sandbox.run(DIGITS_MODEL, &["input=text.npy"]), bad_input, "text.npy: not a .npy file");
}

#[test]
fn arguments_that_do_not_fit_the_model_are_named() {
    let digits = digits();
    let sandbox = Sandbox::new(&[("pixels.npy", &digits.pixels), ("short.npy", &f32_array(&[2, 64], &[0.0; 128]))]);
    let run = |args: &[&str]| sandbox.run(DIGITS_MODEL, args);
    refused(run(&["input=pixels.npy", "output=logits"]), bad_input, "its outputs are \"label\", \"probabilities\"");
    refused(run(&["input=pixels:pixels.npy"]), bad_input, "no input \"pixels\"; its inputs are \"input\"");
    refused(run(&["input=input:pixels.npy", "input=input:short.npy"]), bad_input, "bound twice");
    refused(run(&["input=pixels.npy", "batch=0"]), bad_input, "from 1 to 4096");
    refused(
        run(&["pipeline=sentence-embedding", "tokenizer=t.json", "text=s.txt"]),
        bad_input,
        "no input of that name",
    );
}

#[test]
fn the_sentence_pipeline_refuses_a_model_without_token_inputs() {
    let tokenizer = br#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
        "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
        "model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1},"unk_token":"[UNK]"}}"#;
    let sandbox = Sandbox::new(&[("tokenizer.json", tokenizer), ("s.txt", b"hello\n"), ("bad.json", b"{")]);
    let args = ["pipeline=sentence-embedding", "tokenizer=tokenizer.json", "text=s.txt"];
    refused(sandbox.run(DIGITS_MODEL, &args), unsupported, "also wants \"input\"");
    let args = ["pipeline=sentence-embedding", "tokenizer=bad.json", "text=s.txt"];
    refused(sandbox.run(DIGITS_MODEL, &args), bad_input, "bad.json is not a tokenizer.json");
}

#[test]
fn cancellation_and_the_time_limit_stop_between_batches() {
    for engine in engines() {
        stops_between_batches(engine);
    }
}

fn stops_between_batches(engine: &str) {
    let digits = digits();
    let args = with_engine(&["input=pixels.npy", "batch=1"], engine);
    let sandbox = Sandbox::new(&[("pixels.npy", &digits.pixels)]);
    let cancel = AtomicBool::new(true);
    assert_eq!(sandbox.run_with(DIGITS_MODEL, &args, LIMITS, &cancel, |_| {}).result, Err(TaskError::Cancelled));

    let cancel = AtomicBool::new(false);
    let run = sandbox.run_with(DIGITS_MODEL, &args, LIMITS, &cancel, |done| {
        if done == 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    assert_eq!(run.result, Err(TaskError::Cancelled));
    assert!(run.steps.len() < 32, "{engine}: stopped early, after {} batches", run.steps.len());
    assert_eq!(fs::read_dir(sandbox.path("output")).unwrap().count(), 0, "nothing is delivered");

    let no_time = Limits { timeout_s: 0, ..LIMITS };
    let run = sandbox.run_with(DIGITS_MODEL, &args, no_time, &AtomicBool::new(false), |_| {});
    assert_eq!(run.result, Err(TaskError::Timeout { seconds: 0 }));
}

#[test]
fn an_engine_or_device_this_provider_lacks_is_named() {
    let digits = digits();
    let sandbox = Sandbox::new(&[("pixels.npy", &digits.pixels)]);
    let (inputs, output) = (sandbox.path("input"), sandbox.path("output"));
    let args = with_engine(&["input=pixels.npy"], "engine=ort");
    let cancel = AtomicBool::new(false);
    let job = Job {
        kind: WorkloadKind::Onnx,
        program: DIGITS_MODEL,
        inputs: &inputs,
        output: &output,
        args: &args,
        container: Default::default(),
        limits: LIMITS,
        progress: &|_| {},
        cancel: &cancel,
    };
    let missing =
        if cfg!(feature = "ort") { "no onnxruntime library configured" } else { "ogpu-runtime's ort feature" };
    refused(OnnxRuntime::new().run(&job), unsupported, missing);
    refused(OnnxRuntime::new().accepts(&args, 0), unsupported, missing);
    assert_eq!(OnnxRuntime::new().accepts(&["input=pixels.npy".into()], 0), Ok(()));
    if !engines().contains(&"engine=ort") {
        return;
    }
    // onnxruntime's CUDA provider runs where there is a CUDA driver (and onnxruntime-gpu),
    // and is refused, never replaced by the CPU in silence, where there is not.
    let on_cuda = sandbox.run(DIGITS_MODEL, &["input=pixels.npy", "engine=ort", "device=cuda"]);
    if available("cuda", ogpu_runtime::gpu::cuda_driver()) {
        on_cuda.unwrap();
        let difference = max_difference(&f32s(&sandbox.output("probabilities.npy")), &digits.probabilities);
        assert!(difference <= digits.tolerance, "on cuda, probabilities differ by {difference}");
    } else {
        refused(on_cuda, unsupported, "device=cuda");
    }
}

#[cfg(feature = "ort")]
#[test]
fn a_library_that_does_not_load_is_named_and_changes_nothing() {
    use ogpu_runtime::onnx::OrtLibrary;
    let error = OrtLibrary::load(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
    assert!(matches!(&error, TaskError::Unsupported(m) if m.contains("cannot load onnxruntime from /nonexistent")));
    // The library the other tests loaded is still the one in use.
    if engines().contains(&"engine=ort") {
        digits_match_the_reference("engine=ort");
    }
}

#[test]
fn a_job_must_fit_the_runtime_and_the_registry_dispatches_by_kind() {
    let digits = digits();
    let sandbox = Sandbox::new(&[("pixels.npy", &digits.pixels)]);
    fs::write(sandbox.path("output/stale.txt"), "left over").unwrap();
    refused(sandbox.run(DIGITS_MODEL, &["input=pixels.npy"]), bad_input, "not empty");
    fs::remove_file(sandbox.path("output/stale.txt")).unwrap();

    let (inputs, output) = (sandbox.path("input"), sandbox.path("output"));
    let args = ["input=pixels.npy".to_string()];
    let cancel = AtomicBool::new(false);
    let job = Job {
        kind: WorkloadKind::Wasm,
        program: DIGITS_MODEL,
        inputs: &inputs,
        output: &output,
        args: &args,
        container: Default::default(),
        limits: LIMITS,
        progress: &|_| {},
        cancel: &cancel,
    };
    assert!(matches!(OnnxRuntime::new().run(&job), Err(TaskError::Unsupported(_))));
    let runtimes = Runtimes::with_defaults(&Libraries::default()).unwrap();
    let outcome = runtimes.run(&Job { kind: WorkloadKind::Onnx, ..job }).unwrap();
    assert_eq!(outcome.trace, None);
    assert_eq!(i64s(&sandbox.output("label.npy")), digits.labels);
}
