//! The wasm runtime against hand-written WASI modules: answers, limits, the sandbox's
//! walls and the errors a client sees.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ogpu_core::spec::{Limits, WorkloadKind};
use ogpu_core::{BlobHash, Hash};
use ogpu_runtime::{Job, Libraries, Outcome, Progress, Runtime, Runtimes, TaskError, WasmRuntime, hash_dir};

mod common;

const SUM_WAT: &str = include_str!("../../../examples/wasm-sum.wat");
const SUM_SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/wasm-sum.toml");
const SUM_NUMBERS: &str = include_str!("../../../examples/numbers.txt");

/// One engine for every test, as on a provider: a timeout in one test must not disturb
/// the others running beside it.
static RUNTIME: LazyLock<WasmRuntime> = LazyLock::new(|| WasmRuntime::new().expect("the engine starts"));

const LIMITS: Limits = Limits { fuel: 1_000_000_000, memory_mb: 16, timeout_s: 20 };
/// Fuel for tens of seconds of a tight loop, so a broken timeout or cancellation shows
/// as running out of fuel instead of hanging the test.
const ENOUGH_FOR_SECONDS: u64 = 20_000_000_000;
const SECRET: &str = "the host's secret";

/// A scratch directory laid out as the agent stages a job: `input/` with the inputs,
/// `output/` empty, and a `secret` file beside them that no module may read.
struct Sandbox {
    root: tempfile::TempDir,
}

struct Run {
    result: Result<Outcome, TaskError>,
    logs: Vec<Progress>,
}

impl Sandbox {
    fn new(inputs: &[(&str, &[u8])]) -> Sandbox {
        let root = common::staged(inputs);
        fs::write(root.path().join("secret"), SECRET).unwrap();
        Sandbox { root }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn run(&self, program: &str, limits: Limits) -> Result<Outcome, TaskError> {
        self.run_with(program.as_bytes(), &[], limits, &AtomicBool::new(false)).result
    }

    fn run_with(&self, program: &[u8], args: &[String], limits: Limits, cancel: &AtomicBool) -> Run {
        let logs = Mutex::new(Vec::new());
        let progress = |p: Progress| logs.lock().unwrap().push(p);
        let (inputs, output) = (self.path("input"), self.path("output"));
        let job = Job {
            kind: WorkloadKind::Wasm,
            program,
            inputs: &inputs,
            output: &output,
            args,
            container: Default::default(),
            limits,
            progress: &progress,
            cancel,
        };
        let result = RUNTIME.run(&job);
        Run { result, logs: logs.into_inner().unwrap() }
    }

    fn output(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.path("output").join(name)).ok()
    }
}

/// A module with the WASI imports the tests use, a page of memory and `body`.
fn module(body: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; exits with the errno as its status when a call failed
  (func $check (param $errno i32) (if (local.get $errno) (then (call $proc_exit (local.get $errno)))))
  ;; writes `len` bytes at `ptr` to `fd`, using bytes 16..28 for the iovec and count
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (call $check (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))))
  {body})"#
    )
}

/// `bytes` as a WAT string literal.
fn wat_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Opens `path` under preopened `fd` with `oflags` and `rights`; exits with status 1 when
/// that fails, else copies up to 64 bytes of the file to standard output.
fn opener(fd: u32, path: &str, oflags: u32, rights: u64) -> String {
    module(&format!(
        r#"(data (i32.const 100) "{path}")
  (func (export "_start")
    (if (call $path_open (i32.const {fd}) (i32.const 0) (i32.const 100) (i32.const {len}) (i32.const {oflags})
          (i64.const {rights}) (i64.const 0) (i32.const 0) (i32.const 8))
      (then (call $proc_exit (i32.const 1))))
    (i32.store (i32.const 0) (i32.const 2000))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $fd_read (i32.load (i32.const 8)) (i32.const 0) (i32.const 1) (i32.const 12)))
    (call $write (i32.const 1) (i32.const 2000) (i32.load (i32.const 12))))"#,
        path = wat_string(path.as_bytes()),
        len = path.len(),
    ))
}

const READ: u64 = 1 << 1;
const WRITE: u64 = 1 << 6;
const CREATE: u32 = 1;
const INPUT_FD: u32 = 3;
const OUTPUT_FD: u32 = 4;

#[test]
fn the_example_sums_its_input_and_hashes_the_same_every_time() {
    let numbers = b"1 2 3\n40\n1000000000000";
    let first = Sandbox::new(&[("numbers.txt", numbers)]);
    let outcome = first.run(SUM_WAT, LIMITS).unwrap();
    assert_eq!(first.output("sum.txt").as_deref(), Some("1000000000046\n"));
    assert_eq!(outcome.trace, None);
    let paths: Vec<(&str, u64)> = outcome.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(paths, [("sum.txt", 14)]);
    assert_eq!(outcome.files[0].hash, BlobHash(Hash::of_bytes(b"1000000000046\n")));
    assert_eq!(outcome.output, hash_dir(&first.path("output")).unwrap());

    let second = Sandbox::new(&[("numbers.txt", numbers)]);
    assert_eq!(second.run(SUM_WAT, LIMITS).unwrap().output, outcome.output);
    let other = Sandbox::new(&[("numbers.txt", b"1 2 3")]);
    assert_ne!(other.run(SUM_WAT, LIMITS).unwrap().output, outcome.output);
}

#[test]
fn the_example_reads_inputs_longer_than_its_buffer() {
    // 5-byte lines do not divide the 64512-byte buffer, so numbers straddle reads.
    let numbers = "1234\n".repeat(30_000);
    let sandbox = Sandbox::new(&[("numbers.txt", numbers.as_bytes())]);
    sandbox.run(SUM_WAT, LIMITS).unwrap();
    assert_eq!(sandbox.output("sum.txt"), Some(format!("{}\n", 1234 * 30_000)));
}

#[test]
fn the_example_spec_names_the_example_files_and_runs() {
    let spec = ogpu_client::spec::resolve(Path::new(SUM_SPEC)).unwrap().spec;
    let workload = &spec.workload;
    assert_eq!(workload.kind, WorkloadKind::Wasm);
    assert_eq!(workload.program, BlobHash(Hash::of_bytes(SUM_WAT.as_bytes())), "program is blake3 of wasm-sum.wat");
    let numbers = BlobHash(Hash::of_bytes(SUM_NUMBERS.as_bytes()));
    assert_eq!(workload.inputs.get("numbers.txt"), Some(&numbers), "numbers.txt is blake3 of examples/numbers.txt");

    let sandbox = Sandbox::new(&[("numbers.txt", SUM_NUMBERS.as_bytes())]);
    let run = sandbox.run_with(SUM_WAT.as_bytes(), &workload.args, workload.limits, &AtomicBool::new(false));
    run.result.unwrap();
    assert_eq!(sandbox.output("sum.txt").as_deref(), Some("5050\n"));
}

#[test]
fn arguments_reach_the_module_stdout_is_delivered_and_stderr_is_streamed() {
    let echo = module(
        r#"(data (i32.const 200) "working\nalmost done")
  (func (export "_start") (local $size i32) (local $i i32)
    (call $check (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (local.set $size (i32.load (i32.const 4)))
    (call $check (call $args_get (i32.const 1024) (i32.const 4096)))
    (loop $each
      (if (i32.eqz (i32.load8_u (i32.add (i32.const 4096) (local.get $i))))
        (then (i32.store8 (i32.add (i32.const 4096) (local.get $i)) (i32.const 10))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $i) (local.get $size))))
    (call $write (i32.const 1) (i32.const 4096) (local.get $size))
    (call $write (i32.const 2) (i32.const 200) (i32.const 19)))"#,
    );
    let sandbox = Sandbox::new(&[]);
    let args = ["--epochs".to_string(), "3".to_string()];
    let run = sandbox.run_with(echo.as_bytes(), &args, LIMITS, &AtomicBool::new(false));
    let outcome = run.result.unwrap();
    assert_eq!(sandbox.output("stdout.txt").as_deref(), Some("program\n--epochs\n3\n"));
    assert_eq!(outcome.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["stdout.txt"]);
    assert_eq!(run.logs, [Progress::Log("working".into()), Progress::Log("almost done".into())]);
}

#[test]
fn clocks_are_frozen_and_randomness_is_reproducible() {
    let sample = module(
        r#"(func (export "_start")
    (call $check (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 304)))
    (call $check (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 312)))
    (call $check (call $random_get (i32.const 320) (i32.const 16)))
    (call $write (i32.const 1) (i32.const 304) (i32.const 32)))"#,
    );
    let stdout = |sandbox: &Sandbox| fs::read(sandbox.path("output/stdout.txt")).unwrap();
    let (first, second) = (Sandbox::new(&[]), Sandbox::new(&[]));
    first.run(&sample, LIMITS).unwrap();
    second.run(&sample, LIMITS).unwrap();
    let bytes = stdout(&first);
    assert_eq!(bytes[..16], [0; 16], "both clocks read zero");
    assert_ne!(bytes[16..], [0; 16], "random_get fills its buffer");
    assert_eq!(bytes, stdout(&second));
}

#[test]
fn a_module_cannot_sleep_on_the_host() {
    // A relative clock subscription of 5 s; the host's poll_oneoff would sleep, then
    // succeed.
    let sleeper = module(
        r#"(func (export "_start")
    (i32.store8 (i32.const 408) (i32.const 0))
    (i32.store (i32.const 416) (i32.const 1))
    (i64.store (i32.const 424) (i64.const 5000000000))
    (call $proc_exit (call $poll_oneoff (i32.const 400) (i32.const 512) (i32.const 1) (i32.const 600))))"#,
    );
    // Had the host slept, the call would have returned 0 after 5 s; ENOTSUP says it did not.
    assert_eq!(Sandbox::new(&[]).run(&sleeper, LIMITS), Err(TaskError::ExitCode(58)), "ENOTSUP");
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let forever = module(r#"(func (export "_start") (loop $again (br $again)))"#);
    let limits = Limits { fuel: 1_000_000, ..LIMITS };
    assert_eq!(Sandbox::new(&[]).run(&forever, limits), Err(TaskError::OutOfFuel { fuel: 1_000_000 }));
}

#[test]
fn growing_memory_past_the_limit_stops_the_run() {
    // Grows 1 MiB at a time; if a grow merely failed, the module would exit with 3.
    let hog = module(
        r#"(func (export "_start")
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (call $proc_exit (i32.const 3)))"#,
    );
    let limits = Limits { memory_mb: 4, ..LIMITS };
    assert_eq!(Sandbox::new(&[]).run(&hog, limits), Err(TaskError::MemoryLimit { limit_mb: 4 }));
    let big_from_the_start = r#"(module (memory 128) (func (export "_start")))"#;
    assert_eq!(Sandbox::new(&[]).run(big_from_the_start, limits), Err(TaskError::MemoryLimit { limit_mb: 4 }));
    let within = r#"(module (memory 16) (func (export "_start") (drop (memory.grow (i32.const 32)))))"#;
    assert!(Sandbox::new(&[]).run(within, limits).is_ok());
}

#[test]
fn a_module_reads_its_inputs_but_nothing_outside_its_directories() {
    let sandbox = Sandbox::new(&[("visible.txt", b"in plain sight")]);
    sandbox.run(&opener(INPUT_FD, "visible.txt", 0, READ), LIMITS).unwrap();
    assert_eq!(sandbox.output("stdout.txt").as_deref(), Some("in plain sight"), "the probe itself works");

    let escapes = [
        (INPUT_FD, "../secret"),
        (OUTPUT_FD, "../secret"),
        (INPUT_FD, "./../input/../secret"),
        (INPUT_FD, "ABSOLUTE"),
        (INPUT_FD, "/etc/hostname"),
    ];
    for (fd, path) in escapes {
        let sandbox = Sandbox::new(&[]);
        let absolute = sandbox.path("secret").to_string_lossy().into_owned();
        let path = if path == "ABSOLUTE" { absolute.as_str() } else { path };
        let result = sandbox.run(&opener(fd, path, 0, READ), LIMITS);
        assert_eq!(result, Err(TaskError::ExitCode(1)), "opening {path:?} under fd {fd}");
        assert_eq!(sandbox.output("stdout.txt"), None);
    }
}

#[test]
fn a_symbolic_link_cannot_reach_outside_and_cannot_be_delivered() {
    // Plants output/link -> ../secret, then reads through it.
    let through_link = module(
        r#"(data (i32.const 100) "../secret") (data (i32.const 120) "link")
  (func (export "_start")
    (if (call $path_symlink (i32.const 100) (i32.const 9) (i32.const 4) (i32.const 120) (i32.const 4))
      (then (call $proc_exit (i32.const 2))))
    (if (call $path_open (i32.const 4) (i32.const 1) (i32.const 120) (i32.const 4) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8))
      (then (call $proc_exit (i32.const 1))))
    (i32.store (i32.const 0) (i32.const 2000))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $fd_read (i32.load (i32.const 8)) (i32.const 0) (i32.const 1) (i32.const 12)))
    (call $write (i32.const 1) (i32.const 2000) (i32.load (i32.const 12))))"#,
    );
    let sandbox = Sandbox::new(&[]);
    let result = sandbox.run(&through_link, LIMITS);
    assert_eq!(result, Err(TaskError::ExitCode(1)), "the link is planted, but opening through it fails");
    assert_eq!(sandbox.output("stdout.txt"), None);

    let plant = module(
        r#"(data (i32.const 100) "sum.txt") (data (i32.const 120) "link")
  (func (export "_start")
    (call $check (call $path_symlink (i32.const 100) (i32.const 7) (i32.const 4) (i32.const 120) (i32.const 4))))"#,
    );
    let result = Sandbox::new(&[]).run(&plant, LIMITS);
    assert!(matches!(&result, Err(TaskError::BadOutput(m)) if m.contains("link")), "{result:?}");
}

#[test]
fn the_input_directory_is_read_only() {
    let sandbox = Sandbox::new(&[("data.bin", b"original")]);
    let create = opener(INPUT_FD, "new.txt", CREATE, WRITE);
    assert_eq!(sandbox.run(&create, LIMITS), Err(TaskError::ExitCode(1)));
    let overwrite = opener(INPUT_FD, "data.bin", 0, WRITE);
    assert_eq!(sandbox.run(&overwrite, LIMITS), Err(TaskError::ExitCode(1)));
    assert!(!sandbox.path("input/new.txt").exists());
    assert_eq!(fs::read(sandbox.path("input/data.bin")).unwrap(), b"original");
}

#[test]
fn a_trap_is_reported_as_one() {
    let result = Sandbox::new(&[]).run(r#"(module (func (export "_start") unreachable))"#, LIMITS);
    assert!(matches!(&result, Err(TaskError::Trap(m)) if m.contains("unreachable")), "{result:?}");
    let divide = r#"(module (func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0)))))"#;
    let result = Sandbox::new(&[]).run(divide, LIMITS);
    assert!(matches!(&result, Err(TaskError::Trap(m)) if m.contains("divide by zero")), "{result:?}");
}

#[test]
fn exit_status_zero_is_success_and_any_other_is_an_error() {
    let exit = |status: i32| module(&format!(r#"(func (export "_start") (call $proc_exit (i32.const {status})))"#));
    assert!(Sandbox::new(&[]).run(&exit(0), LIMITS).is_ok());
    assert_eq!(Sandbox::new(&[]).run(&exit(7), LIMITS), Err(TaskError::ExitCode(7)));
}

#[test]
fn a_long_run_times_out_on_the_wall_clock() {
    let forever = module(r#"(func (export "_start") (loop $again (br $again)))"#);
    let limits = Limits { fuel: ENOUGH_FOR_SECONDS, timeout_s: 1, ..LIMITS };
    let started = Instant::now();
    assert_eq!(Sandbox::new(&[]).run(&forever, limits), Err(TaskError::Timeout { seconds: 1 }));
    // Fuel for tens of seconds was left: the clock, not the fuel, stopped it, and not early.
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn cancelling_stops_a_run_promptly() {
    let forever = module(r#"(func (export "_start") (loop $again (br $again)))"#);
    let limits = Limits { fuel: ENOUGH_FOR_SECONDS, ..LIMITS };
    let cancel = AtomicBool::new(false);
    let sandbox = Sandbox::new(&[]);
    let run = thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(200));
            cancel.store(true, Ordering::Relaxed);
        });
        sandbox.run_with(forever.as_bytes(), &[], limits, &cancel)
    });
    // Cancelled, not out of fuel (tens of seconds of it) nor timed out (20 s): promptly.
    assert_eq!(run.result, Err(TaskError::Cancelled));
    let already = AtomicBool::new(true);
    assert_eq!(
        Sandbox::new(&[]).run_with(b"not even a module", &[], limits, &already).result,
        Err(TaskError::Cancelled)
    );
}

#[test]
fn programs_that_cannot_be_loaded_are_invalid() {
    let cases: [(&[u8], &str); 5] = [
        (b"\0asm\x01\0\0\0\xff", "failed to parse"),
        (b"(module (func", "expected"),
        (b"(module (func (export \"main\")))", "_start"),
        (b"(module (import \"env\" \"gpu\" (func)) (func (export \"_start\")))", "gpu"),
        (b"(module (import \"wasi_snapshot_preview1\" \"fd_write\" (func)) (func (export \"_start\")))", "fd_write"),
    ];
    for (program, expected) in cases {
        let run = Sandbox::new(&[]).run_with(program, &[], LIMITS, &AtomicBool::new(false));
        let name = String::from_utf8_lossy(program);
        assert!(
            matches!(&run.result, Err(TaskError::InvalidProgram(m)) if m.contains(expected)),
            "{name}: {:?}",
            run.result
        );
    }
}

#[test]
fn a_job_must_fit_the_runtime() {
    let sandbox = Sandbox::new(&[]);
    fs::write(sandbox.path("output/stale.txt"), "left over").unwrap();
    let result = sandbox.run(SUM_WAT, LIMITS);
    assert!(matches!(&result, Err(TaskError::BadInput(m)) if m.contains("not empty")), "{result:?}");

    let missing: &Path = &sandbox.path("nowhere");
    let (output, cancel) = (sandbox.path("output"), AtomicBool::new(false));
    let job = Job {
        kind: WorkloadKind::Train,
        program: SUM_WAT.as_bytes(),
        inputs: missing,
        output: &output,
        args: &[],
        container: Default::default(),
        limits: LIMITS,
        progress: &|_| {},
        cancel: &cancel,
    };
    assert!(matches!(RUNTIME.run(&job), Err(TaskError::Unsupported(_))));
    let runtimes = Runtimes::with_defaults(&Libraries::default()).unwrap();
    assert_eq!(runtimes.kinds().collect::<Vec<_>>(), [WorkloadKind::Wasm, WorkloadKind::Onnx, WorkloadKind::Train]);
    let mut wasm_only = Runtimes::new();
    wasm_only.insert(Box::new(WasmRuntime::new().unwrap()));
    assert!(wasm_only.get(WorkloadKind::Train).is_none());
    let result = wasm_only.run(&job);
    assert!(matches!(&result, Err(TaskError::Unsupported(m)) if m.contains("no train runtime")), "{result:?}");

    fs::remove_file(sandbox.path("output/stale.txt")).unwrap();
    let result = runtimes.run(&Job { kind: WorkloadKind::Wasm, ..job });
    assert!(matches!(&result, Err(TaskError::BadInput(m)) if m.contains("/input")), "{result:?}");
}

/// A module that creates `count` empty files in `/output`, named by five decimal digits.
fn file_maker(count: u32) -> String {
    module(&format!(
        r#"(data (i32.const 100) "00000")
  (func (export "_start")
    (local $i i32) (local $n i32) (local $at i32)
    (loop $files
      ;; the name: $i in five digits at 100..105
      (local.set $n (local.get $i))
      (local.set $at (i32.const 104))
      (loop $digits
        (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
        (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
        (local.set $at (i32.sub (local.get $at) (i32.const 1)))
        (br_if $digits (i32.ge_u (local.get $at) (i32.const 100))))
      (call $check (call $path_open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 5) (i32.const {CREATE})
        (i64.const {WRITE}) (i64.const 0) (i32.const 0) (i32.const 8)))
      (call $check (call $fd_close (i32.load (i32.const 8))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $files (i32.lt_u (local.get $i) (i32.const {count})))))"#
    ))
}

/// Finding 18: `/output` had no quota, so a module could fill the provider's disk with
/// files (or bytes) that the agent would then try to hash and upload.
#[test]
fn a_module_writing_more_files_than_the_output_quota_is_stopped() {
    let sandbox = Sandbox::new(&[]);
    let result = sandbox.run(&file_maker(ogpu_runtime::MAX_OUTPUT_FILES as u32 + 1), LIMITS);
    let delivered = result.as_ref().map(|outcome| outcome.files.len());
    assert!(matches!(result, Err(TaskError::OutputLimit { .. })), "{delivered:?}");
    let fine = Sandbox::new(&[]);
    let outcome = fine.run(&file_maker(100), LIMITS).unwrap();
    assert_eq!(outcome.files.len(), 100);
}
