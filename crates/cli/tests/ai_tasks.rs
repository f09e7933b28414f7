//! The AI examples end to end on a devnet of real processes: a training task verified by
//! proof of learning (and a provider that skips the training caught by it), the same for
//! a container's own training code (examples/container-digits), and batch inference with
//! the digits classifier, each submitted with `ogpu task submit` and its result fetched
//! with `ogpu task result`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::market::{Devnet, EXAMPLES, InProcessAgent, ONE_DEVNET_AT_A_TIME, assert_success, paid, submitted_id};
use ogpu_chain::Event;
use ogpu_chain::receipt::{PayReason, SlashReason};
use ogpu_chain::state::{Outcome, Stage, VerifyReason};
use ogpu_core::spec::WorkloadKind;
use ogpu_core::tx::Trace;
use ogpu_core::{Address, BlobHash, Hash, TaskId, merkle};
use ogpu_runtime::container::learning::{self, Checkpoint};
use ogpu_runtime::onnx::npy;
use ogpu_runtime::{
    ContainerRuntime, Job, Outcome as RunOutcome, OutputFile, Runtime, Runtimes, TaskError, TrainRuntime, digest_dir,
    hash_dir,
};

fn example(name: &str) -> String {
    Path::new(EXAMPLES).join(name).display().to_string()
}

/// Submits an example spec with `ogpu task submit` and waits for it to complete.
fn run_example(devnet: &Devnet, spec: &str) -> (TaskId, Hash) {
    let output = devnet.ogpu(&["task", "submit", &example(spec)]);
    assert_success(&output);
    let id = submitted_id(&output);
    match devnet.wait_until_ended(&id, Duration::from_secs(240)) {
        Outcome::Completed { output } => (id, output),
        other => panic!("{spec} ended {other:?}: {:?}", devnet.events(&id)),
    }
}

/// Fetches the result with `ogpu task result` and checks it against its hash.
fn fetch(devnet: &Devnet, id: &TaskId, result: &Hash) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let fetched = devnet.ogpu(&["task", "result", &id.to_string(), "--out", out.path().to_str().unwrap()]);
    assert_success(&fetched);
    assert_eq!(*result, hash_dir(out.path()).unwrap());
    out
}

/// The digits model's accuracy on the 297 unseen rows, from the fetched `metrics.json`.
fn eval_accuracy(result: &Path) -> f64 {
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(result.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["eval_samples"], 297);
    metrics["eval_accuracy"].as_f64().unwrap()
}

fn verdicts(events: &[Event]) -> Vec<(Address, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Verdict { executor, pass, .. } => Some((*executor, *pass)),
            _ => None,
        })
        .collect()
}

fn first_award(events: &[Event]) -> Option<Address> {
    events.iter().find_map(|e| match e {
        Event::Awarded { provider, .. } => Some(*provider),
        _ => None,
    })
}

#[test]
fn a_training_task_passes_proof_of_learning_and_its_model_reaches_91_percent() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let (id, result) = run_example(&devnet, "digits-train.toml");
    let events = devnet.events(&id);

    // The executor committed its checkpoint trace; two other providers each replayed a
    // segment of it and passed it.
    let task = devnet.task(&id);
    let [executor] = &task.executors[..] else { panic!("one executor: {:?}", task.executors) };
    let Stage::Revealed(claim) = executor.stage else { panic!("{:?}", executor.stage) };
    assert_eq!(claim.trace.map(|t| t.checkpoints), Some(9), "checkpoints at 0, 150, ..., 1200 steps");
    let verifiers = events
        .iter()
        .find_map(|e| match e {
            Event::VerificationStarted { reason: VerifyReason::ProofOfLearning, verifiers, .. } => Some(verifiers),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no proof-of-learning round: {events:?}"));
    assert_eq!(verifiers.len(), 2);
    assert!(!verifiers.contains(&executor.provider));
    assert_eq!(verdicts(&events), [(executor.provider, true)]);
    for verifier in verifiers {
        assert!(!paid(&events, verifier, PayReason::Verification).is_zero(), "{verifier} reported and was paid");
    }

    // Training is private by default: the verifiers replayed from checkpoints they
    // opened with keys the client handed them, and the result is nowhere in plain.
    assert!(task.spec.private.is_some(), "a train spec is private unless it says otherwise");
    for worker in std::iter::once(&executor.provider).chain(verifiers) {
        assert!(task.keys.contains_key(worker), "{worker} was given the keys");
    }
    assert!(executor.sealed.is_some());
    assert!(!devnet.client.has_blob(&BlobHash(result)).unwrap(), "only sealed copies are stored");

    // The client opens it, and it is exactly what a run of the same spec here delivers.
    let out = fetch(&devnet, &id, &result);
    let local = tempfile::tempdir().unwrap();
    let ran =
        devnet.ogpu(&["task", "run-local", &example("digits-train.toml"), "--out", local.path().to_str().unwrap()]);
    assert_success(&ran);
    assert_eq!(hash_dir(local.path()).unwrap(), result, "the same model, checkpoints and metrics");
    let accuracy = eval_accuracy(out.path());
    assert!(accuracy >= 0.91, "eval accuracy {accuracy} on rows 1500..1796");
    assert!(out.path().join("model.safetensors").is_file());
    let logs = devnet.ogpu(&["task", "logs", &id.to_string()]);
    assert_success(&logs);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("lands at"), "the verifiers' findings are in the task's log: {logs}");
}

/// The train runtime of a provider that skips the work: it delivers its initial model as
/// every checkpoint, under a trace rebuilt over them, as if it had trained.
struct Lazy(TrainRuntime);

impl Runtime for Lazy {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Train
    }

    fn run(&self, job: &Job<'_>) -> Result<RunOutcome, TaskError> {
        let honest = self.0.run(job)?;
        let count = honest.trace.expect("a training run has a trace").checkpoints;
        let initial = std::fs::read(job.output.join("checkpoints/0000.safetensors")).unwrap();
        let trace: serde_json::Value =
            serde_json::from_slice(&std::fs::read(job.output.join("trace.json")).unwrap()).unwrap();
        let mut leaves = Vec::new();
        for index in 0..count {
            std::fs::write(job.output.join(format!("checkpoints/{index:04}.safetensors")), &initial).unwrap();
            leaves.push(Hash::of_bytes(&initial));
        }
        leaves.push(trace["data_order"].as_str().unwrap().parse().unwrap());
        let trace = Trace { root: merkle::root(&leaves), checkpoints: count };
        handed_in(job, honest, |_| Ok(trace))
    }
}

/// What a cheat hands in after a run (`honest`): the files it left in the job's output,
/// under the trace `trace` makes of them.
fn handed_in(
    job: &Job<'_>,
    honest: RunOutcome,
    trace: impl FnOnce(&[OutputFile]) -> Result<Trace, TaskError>,
) -> Result<RunOutcome, TaskError> {
    let digest = digest_dir(job.output)?;
    let trace = trace(&digest.files)?;
    Ok(RunOutcome { output: digest.hash, files: digest.files, manifest: digest.manifest, trace: Some(trace), ..honest })
}

/// Runs example `spec` on a devnet where a provider with the runtime `cheat`, which skips
/// the work, bids the least: it wins the first round, fails proof of learning and is
/// slashed, and another provider does the work and passes. Returns the task, its result
/// and that provider.
fn run_past_a_cheat(devnet: &Devnet, spec: &str, cheat: Box<dyn Runtime>) -> (TaskId, Hash, Address) {
    let mut runtimes = Runtimes::new();
    runtimes.insert(cheat);
    let lazy = InProcessAgent::start(devnet, &format!("ai-test-lazy-{spec}"), runtimes);
    let (id, result) = run_example(devnet, spec);
    let lazy = {
        let address = lazy.address;
        drop(lazy);
        address
    };
    let events = devnet.events(&id);
    assert_eq!(first_award(&events), Some(lazy), "the cheapest bid wins the first round: {events:?}");
    let verdicts = verdicts(&events);
    assert_eq!(verdicts[0], (lazy, false), "{verdicts:?}");
    assert_eq!(devnet.slashes(&lazy), [SlashReason::WrongResult]);
    let trained_by: Vec<Address> = events
        .iter()
        .filter_map(|e| match e {
            Event::Paid { to, why: PayReason::Execution, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(trained_by.len(), 1);
    assert_ne!(trained_by[0], lazy);
    assert_eq!(verdicts.last(), Some(&(trained_by[0], true)));
    (id, result, trained_by[0])
}

#[test]
fn a_trainer_that_skips_the_work_fails_proof_of_learning_and_the_task_is_trained_elsewhere() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let (id, result, _) = run_past_a_cheat(&devnet, "digits-train.toml", Box::new(Lazy(TrainRuntime::new())));
    let out = fetch(&devnet, &id, &result);
    assert!(eval_accuracy(out.path()) >= 0.91);
}

/// The container runtime of a provider that skips the work: it runs the image, then
/// delivers the initial checkpoint as every later one, under a trace rebuilt over them.
struct LazyContainer(ContainerRuntime);

impl Runtime for LazyContainer {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Container
    }

    fn accepts(&self, args: &[String], gpus: u32) -> Result<(), TaskError> {
        self.0.accepts(args, gpus)
    }

    fn run(&self, job: &Job<'_>) -> Result<RunOutcome, TaskError> {
        let honest = self.0.run(job)?;
        // A replay it was chosen to verify, it runs as it is.
        let Some(checkpointing) = job.container.checkpoints.filter(|c| c.resume.is_none()) else { return Ok(honest) };
        let checkpoints = learning::checkpoints(&honest.files, &checkpointing.training)?;
        let initial = &checkpoints[0];
        for later in &checkpoints[1..] {
            let dir = job.output.join(Checkpoint::dir(later.step));
            std::fs::remove_dir_all(&dir).unwrap();
            std::fs::create_dir(&dir).unwrap();
            for file in &initial.files {
                std::fs::copy(job.output.join(&file.path), dir.join(initial.relative(file))).unwrap();
            }
        }
        handed_in(job, honest, |files| learning::trace(&learning::checkpoints(files, &checkpointing.training)?))
    }
}

/// Whether the container-digits example can run here: bubblewrap, and its image, built by
/// the example's script where it is not yet (mmdebstrap, as root, about half a minute).
fn container_digits_image() -> bool {
    if !common::available("bubblewrap", Path::new("/usr/bin/bwrap").is_file()) {
        return false;
    }
    let image = Path::new(EXAMPLES).join("container-digits/image.oci.tar");
    if image.is_file() {
        return true;
    }
    if !common::available("mmdebstrap", Path::new("/usr/bin/mmdebstrap").is_file()) {
        return false;
    }
    let built = std::process::Command::new(Path::new(EXAMPLES).join("container-digits/build.sh"))
        .env("OGPU", env!("CARGO_BIN_EXE_ogpu"))
        .status()
        .unwrap();
    assert!(built.success(), "examples/container-digits/build.sh failed: {built}");
    true
}

#[test]
fn a_containers_own_training_passes_proof_of_learning_where_a_provider_that_skips_it_is_slashed() {
    if !container_digits_image() {
        return;
    }
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let images = tempfile::tempdir().unwrap();
    let lazy = LazyContainer(ContainerRuntime::new(images.path()).unwrap());
    let (id, result, honest) = run_past_a_cheat(&devnet, "container-digits.toml", Box::new(lazy));
    let task = devnet.task(&id);
    let executor = task.executors.iter().find(|e| e.provider == honest).unwrap();
    let Stage::Revealed(claim) = executor.stage else { panic!("{:?}", executor.stage) };
    assert_eq!(claim.trace.map(|t| t.checkpoints), Some(7), "checkpoints at 0, 100, ..., 600 steps");

    // The client's model learned, and it is what a run of the same spec here delivers.
    let out = fetch(&devnet, &id, &result);
    let accuracy = eval_accuracy(out.path());
    assert!(accuracy >= 0.90, "eval accuracy {accuracy} on rows 1500..1796");
    let local = tempfile::tempdir().unwrap();
    let spec = example("container-digits.toml");
    let ran = devnet.ogpu(&["task", "run-local", &spec, "--out", local.path().to_str().unwrap()]);
    assert_success(&ran);
    assert_eq!(hash_dir(local.path()).unwrap(), result, "the same checkpoints, model and metrics");
    let logs = devnet.ogpu(&["task", "logs", &id.to_string()]);
    assert_success(&logs);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.contains("lands at step"), "the verifiers' findings are in the task's log: {logs}");
}

#[test]
fn the_digits_inference_example_labels_272_of_297_on_the_devnet() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let (id, result) = run_example(&devnet, "digits-infer.toml");
    let out = fetch(&devnet, &id, &result);
    let labels = npy::read(&std::fs::read(out.path().join("label.npy")).unwrap()).unwrap();
    let truth = npy::read(&std::fs::read(Path::new(EXAMPLES).join("digits-infer/labels.npy")).unwrap()).unwrap();
    let (labels, truth) = (labels.values::<i64>().unwrap(), truth.values::<i64>().unwrap());
    let correct = labels.iter().zip(&truth).filter(|(a, b)| a == b).count();
    assert_eq!((correct, truth.len()), (272, 297), "as onnxruntime labels them");
    assert!(out.path().join("probabilities.npy").is_file());
}
