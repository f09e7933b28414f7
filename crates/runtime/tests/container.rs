//! The container runtime on an image of Debian's static busybox built by the test (see
//! `ogpu_testkit::images`): the image's command runs on the task's inputs and its outputs
//! are the result, `args` replace the image's `Cmd` as with `docker run`, the image's
//! environment is the command's with the task's `env` over it, the steps the command
//! appends to `$OGPU_PROGRESS` are reported, and a failing command, a timeout or an
//! archive that is no image are errors by name. Skipped, saying so, where bubblewrap or busybox is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use ogpu_core::spec::{Limits, Training, WorkloadKind};
use ogpu_runtime::container::learning;
use ogpu_runtime::{
    Checkpointing, ContainerRuntime, ContainerSettings, Job, Outcome, Progress, Resume, Runtime, TaskError,
};
use serde_json::{Value, json};

fn available() -> bool {
    let bwrap = Path::new(ogpu_container::sandbox::BWRAP).is_file();
    ogpu_testkit::available!("bubblewrap", bwrap && Path::new(ogpu_testkit::images::BUSYBOX).is_file())
}

/// Runs the busybox image with `config` and `args` on an input `numbers.txt`; returns the
/// outcome (with the output directory, kept) and the lines it printed.
fn run(config: Value, args: &[&str], timeout_s: u32) -> (Result<Outcome, TaskError>, tempfile::TempDir, Vec<String>) {
    let ran = run_with(config, args, &BTreeMap::new(), None, 0, timeout_s);
    (ran.outcome, ran.dir, ran.lines)
}

/// What a run gave, and what it reported on its way.
struct Ran {
    outcome: Result<Outcome, TaskError>,
    dir: tempfile::TempDir,
    lines: Vec<String>,
    steps: Vec<Progress>,
}

fn run_with(
    config: Value,
    args: &[&str],
    env: &BTreeMap<String, String>,
    checkpoints: Option<Checkpointing>,
    gpus: u32,
    timeout_s: u32,
) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let archive = std::fs::read(ogpu_testkit::images::busybox(dir.path(), config)).unwrap();
    let (input, output) = (dir.path().join("input"), dir.path().join("output"));
    std::fs::create_dir(&input).unwrap();
    std::fs::create_dir(&output).unwrap();
    std::fs::write(input.join("numbers.txt"), "1\n2\n3\n").unwrap();
    let runtime = ContainerRuntime::new(&dir.path().join("images")).unwrap();
    let (lines, steps) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let progress = |progress: Progress| match progress {
        Progress::Log(line) => lines.lock().unwrap().push(line),
        step => steps.lock().unwrap().push(step),
    };
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let job = Job {
        kind: WorkloadKind::Container,
        program: &archive,
        inputs: &input,
        output: &output,
        args: &args,
        container: ContainerSettings { env, checkpoints, gpus },
        limits: Limits { fuel: 1, memory_mb: 256, timeout_s },
        progress: &progress,
        cancel: &AtomicBool::new(false),
    };
    let outcome = runtime.run(&job);
    Ran { outcome, dir, lines: lines.into_inner().unwrap(), steps: steps.into_inner().unwrap() }
}

#[test]
fn the_images_command_runs_on_the_inputs_and_its_outputs_are_the_result() {
    if !available() {
        return;
    }
    let config = json!({
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["wc -l < /input/numbers.txt > /output/count.txt && echo counted $GREETING"],
        "Env": ["PATH=/bin", "GREETING=from the image"],
        "WorkingDir": "/input",
    });
    let (outcome, dir, lines) = run(config.clone(), &[], 30);
    let outcome = outcome.unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("output/count.txt")).unwrap(), "3\n");
    assert_eq!(outcome.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["count.txt"]);
    assert_eq!(lines, ["counted from the image"]);

    let (again, _, _) = run(config.clone(), &[], 30);
    assert_eq!(again.unwrap().output, outcome.output, "the same image and inputs give the same result");

    // Arguments replace the image's Cmd, after its entrypoint, as `docker run` does.
    let (given, dir, _) = run(config, &["pwd > /output/where.txt"], 30);
    given.unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("output/where.txt")).unwrap(), "/input\n");
}

#[test]
fn the_tasks_env_goes_over_the_images_and_the_steps_it_appends_to_its_progress_file_are_reported() {
    if !available() {
        return;
    }
    let config = json!({ "Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin", "SEED=1", "KEEP=image"] });
    let script = r#"echo $SEED $KEEP; for i in 1 2 3; do
        echo "{\"step\": $i, \"total\": 3, \"loss\": 0.$((4 - i))}" >> $OGPU_PROGRESS; sleep 0.3; done"#;
    let env = BTreeMap::from([("SEED".to_string(), "42".to_string())]);
    let ran = run_with(config, &[script], &env, None, 0, 30);
    ran.outcome.unwrap();
    assert_eq!(ran.lines, ["42 image"]);
    let step = |done, loss| Progress::Step { done, total: 3, metrics: vec![("loss", loss)] };
    assert_eq!(ran.steps, [step(1, 0.3), step(2, 0.2), step(3, 0.1)]);
}

#[test]
fn a_failing_command_a_timeout_and_an_archive_that_is_no_image_are_errors_by_name() {
    if !available() {
        return;
    }
    let shell = json!({ "Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"] });
    let (failed, _, _) = run(shell.clone(), &["exit 3"], 30);
    assert!(matches!(failed, Err(TaskError::ExitCode(3))), "{failed:?}");
    let (slow, _, _) = run(shell, &["sleep 30"], 1);
    assert!(matches!(slow, Err(TaskError::Timeout { seconds: 1 })), "{slow:?}");
    let (nothing, _, _) = run(json!({}), &[], 30);
    assert!(matches!(nothing, Err(TaskError::BadInput(ref why)) if why.contains("no command")), "{nothing:?}");

    let dir = tempfile::tempdir().unwrap();
    let runtime = ContainerRuntime::new(&dir.path().join("images")).unwrap();
    let output = dir.path().join("output");
    std::fs::create_dir(&output).unwrap();
    let job = Job {
        kind: WorkloadKind::Container,
        program: b"not an image archive",
        inputs: dir.path(),
        output: &output,
        args: &[],
        container: Default::default(),
        limits: Limits { fuel: 1, memory_mb: 256, timeout_s: 10 },
        progress: &|_| {},
        cancel: &AtomicBool::new(false),
    };
    let refused = runtime.run(&job);
    assert!(matches!(refused, Err(TaskError::InvalidProgram(_))), "{refused:?}");
}

/// A "training" in busybox's shell by the checkpoint convention: a number stepped
/// `$OGPU_STEPS` times, its value after step 0, every `$OGPU_CHECKPOINT_EVERY` steps and
/// the last written as a checkpoint; resumed from one when the runtime says so.
const CHECKPOINTING: &str = r#"set -e
step=0; state=1; total=$OGPU_STEPS
save() { mkdir -p $OGPU_CHECKPOINT_DIR/$1; echo $2 > $OGPU_CHECKPOINT_DIR/$1/state.txt; }
if [ -n "$OGPU_RESUME_FROM" ]; then
  step=${OGPU_RESUME_FROM##*/}; state=$(cat $OGPU_RESUME_FROM/state.txt); total=$OGPU_STOP_AT
else
  save 0 $state
fi
while [ $step -lt $total ]; do
  step=$((step + 1)); state=$(((state * 3 + step) % 1000003))
  if [ $((step % OGPU_CHECKPOINT_EVERY)) = 0 ] || [ $step = $total ]; then save $step $state; fi
done
echo $state > /output/final.txt"#;

/// Seven steps, a checkpoint every three: after steps 0, 3, 6 and 7.
const SEVEN_STEPS: Training = Training { steps: 7, checkpoint_every: 3 };

fn shell() -> Value {
    json!({ "Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"] })
}

#[test]
fn a_checkpointing_container_commits_a_trace_and_replays_a_segment_to_its_next_checkpoint() {
    if !available() {
        return;
    }
    let every = Some(Checkpointing { training: SEVEN_STEPS, resume: None });
    let ran = run_with(shell(), &[CHECKPOINTING], &BTreeMap::new(), every, 0, 30);
    let outcome = ran.outcome.unwrap();
    let checkpoints = learning::checkpoints(&outcome.files, &SEVEN_STEPS).unwrap();
    assert_eq!(checkpoints.iter().map(|c| c.step).collect::<Vec<_>>(), [0, 3, 6, 7]);
    assert_eq!(outcome.trace, Some(learning::trace(&checkpoints).unwrap()));
    let output = ran.dir.path().join("output");
    let state = |dir: &Path, step: u64| std::fs::read_to_string(dir.join(format!("checkpoints/{step}/state.txt")));

    // Segment 1, steps 3 to 6, from the run's checkpoint 3.
    let from = output.join("checkpoints/3");
    let resume =
        Some(Checkpointing { training: SEVEN_STEPS, resume: Some(Resume { from: &from, step: 3, stop_at: 6 }) });
    let replay = run_with(shell(), &[CHECKPOINTING], &BTreeMap::new(), resume, 0, 30);
    assert_eq!(replay.outcome.unwrap().trace, None, "a replay has no trace of its own");
    let replayed = replay.dir.path().join("output");
    assert_eq!(state(&replayed, 6).unwrap(), state(&output, 6).unwrap());
    assert!(state(&replayed, 3).is_err(), "it resumed at step 3 rather than starting over");
}

#[test]
fn a_container_that_ignores_the_checkpoint_convention_is_refused_for_proof_of_learning() {
    if !available() {
        return;
    }
    let every = || Some(Checkpointing { training: SEVEN_STEPS, resume: None });
    let ignores = run_with(shell(), &["echo done > /output/final.txt"], &BTreeMap::new(), every(), 0, 30);
    let refused = ignores.outcome.unwrap_err().to_string();
    assert!(refused.contains("wrote 0 checkpoint(s)") && refused.contains("checkpoint convention"), "{refused}");

    let skips = "mkdir -p $OGPU_CHECKPOINT_DIR/0 $OGPU_CHECKPOINT_DIR/5; touch $OGPU_CHECKPOINT_DIR/0/a $OGPU_CHECKPOINT_DIR/5/a";
    let ran = run_with(shell(), &[skips], &BTreeMap::new(), every(), 0, 30);
    let refused = ran.outcome.unwrap_err().to_string();
    assert!(refused.contains("(steps [0, 5]), and the task's training makes 4"), "{refused}");

    // Stopped early, its checkpoints lined up: not the training the task declares.
    let early =
        r#"for s in 0 3; do mkdir -p $OGPU_CHECKPOINT_DIR/$s; echo $s > $OGPU_CHECKPOINT_DIR/$s/state.txt; done"#;
    let ran = run_with(shell(), &[early], &BTreeMap::new(), every(), 0, 30);
    let refused = ran.outcome.unwrap_err().to_string();
    assert!(refused.contains("(steps [0, 3]), and the task's training makes 4"), "{refused}");

    let dir = tempfile::tempdir().unwrap();
    let resume =
        Some(Checkpointing { training: SEVEN_STEPS, resume: Some(Resume { from: dir.path(), step: 3, stop_at: 6 }) });
    let ran = run_with(shell(), &["true"], &BTreeMap::new(), resume, 0, 30);
    let refused = ran.outcome.unwrap_err().to_string();
    assert!(refused.contains("the program wrote no checkpoint 6"), "{refused}");
}

#[test]
fn a_container_that_asks_for_a_gpu_gets_the_machines_nvidia_devices_or_a_refusal() {
    if !available() {
        return;
    }
    let script = "ls /dev; echo $LD_LIBRARY_PATH";
    let ran = run_with(shell(), &[script], &BTreeMap::new(), None, 1, 30);
    match ogpu_container::nvidia::Driver::find(Path::new("/")) {
        Some(_) => {
            ran.outcome.unwrap();
            assert!(ran.lines.iter().any(|line| line == "nvidia0"), "{:?}", ran.lines);
            assert!(ran.lines.iter().any(|line| line == ogpu_container::nvidia::LIBRARY_DIR), "{:?}", ran.lines);
        }
        None => {
            let refused = ran.outcome.unwrap_err();
            assert!(
                matches!(refused, TaskError::Unsupported(ref why) if why.contains("no NVIDIA device node")),
                "{refused}"
            );
        }
    }
}
