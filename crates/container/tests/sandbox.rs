//! The sandbox, with an image built here from Debian's static busybox (`busybox-static`):
//! a command sees its image, its inputs read-only, its outputs and the runtime's `/ogpu`,
//! and nothing else of
//! the host, no network; what a task has no business doing is refused; a fork bomb, a
//! memory hog and an output filler are stopped by their limits; a timeout or a cancel
//! kills every process. Skipped, saying so, where bubblewrap or busybox is missing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ogpu_container::sandbox::{self, Command, Ended, Limits, Mounts, Stream};
use ogpu_container::{Cache, Image};
use serde_json::json;

fn available() -> bool {
    let bwrap = std::process::Command::new("bwrap").arg("--version").output().is_ok_and(|o| o.status.success());
    ogpu_testkit::available!("bubblewrap", bwrap && Path::new(ogpu_testkit::images::BUSYBOX).is_file())
}

/// A task's directories: the image's root filesystem (busybox and its applets, through
/// the cache as a task's image is), its inputs, its outputs, the runtime's exchange.
struct Task {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    input: PathBuf,
    output: PathBuf,
    runtime: PathBuf,
}

impl Task {
    fn mounts(&self) -> Mounts<'_> {
        Mounts { rootfs: &self.rootfs, input: &self.input, output: &self.output, runtime: &self.runtime, driver: None }
    }
}

fn task() -> Task {
    let dir = tempfile::tempdir().unwrap();
    let archive = ogpu_testkit::images::busybox(dir.path(), json!({ "Cmd": ["/bin/sh"] }));
    let cache = Cache::open(&dir.path().join("cache"), Default::default(), 1 << 30).unwrap();
    let rootfs = cache.rootfs(&Image::read(&archive).unwrap()).unwrap().to_path_buf();
    let [input, output, runtime] = ["input", "output", "runtime"].map(|name| dir.path().join(name));
    for made in [&input, &output, &runtime] {
        fs::create_dir(made).unwrap();
    }
    fs::write(input.join("in.txt"), "the input\n").unwrap();
    Task { _dir: dir, rootfs, input, output, runtime }
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        processes: 64,
        file_bytes: 64 << 20,
        output_bytes: 128 << 20,
        wall: Duration::from_secs(30),
    }
}

/// Runs `script` with `sh -c` in the task's sandbox: how it ended and what it printed.
fn run(task: &Task, script: &str, limits: &Limits, cancel: &AtomicBool) -> (Ended, Vec<String>) {
    run_in(&task.mounts(), script, limits, cancel)
}

/// [`run`] with the mounts given.
fn run_in(mounts: &Mounts, script: &str, limits: &Limits, cancel: &AtomicBool) -> (Ended, Vec<String>) {
    run_with(mounts, script, BTreeMap::from([("PATH".to_string(), "/bin".to_string())]), limits, cancel).unwrap()
}

fn run_with(
    mounts: &Mounts,
    script: &str,
    env: BTreeMap<String, String>,
    limits: &Limits,
    cancel: &AtomicBool,
) -> Result<(Ended, Vec<String>), sandbox::SandboxError> {
    let command = Command { argv: vec!["/bin/sh".into(), "-c".into(), script.into()], env, working_dir: "/".into() };
    let mut lines = Vec::new();
    let ended = sandbox::run(mounts, &command, limits, cancel, |stream, line| {
        lines.push(format!("{}{line}", if stream == Stream::Stderr { "! " } else { "" }));
    })?;
    Ok((ended, lines))
}

fn running() -> AtomicBool {
    AtomicBool::new(false)
}

#[test]
fn a_command_reads_its_inputs_writes_its_outputs_and_sees_nothing_else() {
    if !available() {
        return;
    }
    let task = task();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "cat /input/in.txt > /output/out.txt && echo wrote; \
         echo '{{\"step\": 1}}' > /ogpu/progress.jsonl && echo runtime is writable; \
         touch /input/new 2>/dev/null || echo input is read-only; \
         touch /bin/new 2>/dev/null || echo image is read-only; \
         ls /; test -e /etc || echo no host files; \
         wget -q -T 2 -O /tmp/page http://127.0.0.1:{port}/ 2>/dev/null || echo no network; \
         id -u; cat /proc/sys/kernel/hostname; \
         echo to stderr >&2"
    );
    let (ended, lines) = run(&task, &script, &limits(), &running());
    assert_eq!(ended, Ended::Exited(0), "{lines:?}");
    assert_eq!(fs::read_to_string(task.output.join("out.txt")).unwrap(), "the input\n");
    assert_eq!(fs::read_to_string(task.runtime.join("progress.jsonl")).unwrap(), "{\"step\": 1}\n");
    let expected = [
        "wrote",
        "runtime is writable",
        "input is read-only",
        "image is read-only",
        "no host files",
        "no network",
        "! to stderr",
    ];
    // The same user and host name wherever it runs.
    for expected in expected.into_iter().chain(["65534", "ogpu"]) {
        assert!(lines.iter().any(|line| line == expected), "{expected:?} in {lines:?}");
    }
    let root: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        // What `ls /` printed, before the host name (also `ogpu`).
        .take_while(|l| *l != "no host files")
        .filter(|l| ["bin", "dev", "input", "ogpu", "output", "proc", "tmp"].contains(l))
        .collect();
    assert_eq!(root, ["bin", "dev", "input", "ogpu", "output", "proc", "tmp"], "the image's root alone: {lines:?}");
    assert!(!task.input.join("new").exists());
}

/// Review finding: the task's environment was bubblewrap's own, so its `PATH` chose which
/// `bwrap` ran on the host (and `LD_PRELOAD` what it loaded). It is the command's alone.
#[test]
fn the_tasks_environment_reaches_its_command_and_never_the_host() {
    if !available() {
        return;
    }
    let task = task();
    let env = BTreeMap::from([
        ("PATH".to_string(), "/proc/self/fd/3/nowhere".to_string()),
        ("LD_PRELOAD".to_string(), "/proc/self/fd/3/evil.so".to_string()),
        ("GREETING".to_string(), "hello".to_string()),
    ]);
    let (ended, lines) = run_with(&task.mounts(), "/bin/echo \"$GREETING $PATH\"", env, &limits(), &running()).unwrap();
    assert_eq!(ended, Ended::Exited(0), "{lines:?}");
    assert!(lines.contains(&"hello /proc/self/fd/3/nowhere".to_string()), "{lines:?}");
    let bad = BTreeMap::from([("A=B".to_string(), "c".to_string())]);
    assert!(matches!(run_with(&task.mounts(), "true", bad, &limits(), &running()), Err(sandbox::SandboxError::Env(_))));
}

/// Review finding: lines still on their way when the command exited were dropped (the
/// last of a run's log, where its error usually is).
#[test]
fn every_line_printed_before_the_command_exits_is_passed_on() {
    if !available() {
        return;
    }
    let task = task();
    let (ended, lines) = run(&task, "seq 1 5000; echo done >&2", &limits(), &running());
    assert_eq!(ended, Ended::Exited(0));
    assert_eq!(lines.len(), 5001, "the last of them: {:?}", lines.last());
    assert!(lines.contains(&"! done".to_string()) && lines.contains(&"5000".to_string()));
}

/// Review finding: a task printing without end kept the watchdog from its checks.
#[test]
fn a_task_that_floods_its_output_is_still_stopped_at_its_time_limit() {
    if !available() {
        return;
    }
    let task = task();
    let started = Instant::now();
    let mut printed = 0usize;
    let short = Limits { wall: Duration::from_secs(2), ..limits() };
    let mounts = task.mounts();
    let command =
        Command { argv: vec!["/bin/yes".into(), "flood".into()], env: BTreeMap::new(), working_dir: "/".into() };
    let mut last = String::new();
    let ended = sandbox::run(&mounts, &command, &short, &running(), |_, line| {
        printed += 1;
        last = line.to_string();
    })
    .unwrap();
    assert_eq!(ended, Ended::TimedOut, "{printed} lines, the last {last:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(printed > 0);
}

/// As root the sandbox is `nobody`, and bubblewrap finds what it mounts by path as that
/// user: a directory it cannot reach is refused up front, naming what blocks it.
#[test]
fn as_root_a_directory_nobody_can_reach_is_refused_by_name() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !available() || fs::metadata("/proc/self").unwrap().uid() != 0 {
        return;
    }
    let task = task();
    let blocked = task._dir.path().join("private");
    fs::create_dir(&blocked).unwrap();
    fs::set_permissions(&blocked, fs::Permissions::from_mode(0o700)).unwrap();
    let output = blocked.join("output");
    fs::create_dir(&output).unwrap();
    let mounts = Mounts { output: &output, ..task.mounts() };
    let command = Command { argv: vec!["/bin/true".into()], ..Command::default() };
    let refused = sandbox::run(&mounts, &command, &limits(), &running(), |_, _| {});
    assert!(
        matches!(&refused, Err(sandbox::SandboxError::Unreachable { blocked: at, .. }) if *at == blocked),
        "{refused:?}"
    );
}

#[test]
fn mounting_and_new_namespaces_are_refused() {
    if !available() {
        return;
    }
    let task = task();
    let script = "mount -t tmpfs none /tmp 2>&1 || echo mount refused; \
                  unshare -n true 2>&1 || echo unshare refused";
    let (ended, lines) = run(&task, script, &limits(), &running());
    assert_eq!(ended, Ended::Exited(0), "{lines:?}");
    assert!(lines.iter().any(|l| l == "mount refused"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "unshare refused"), "{lines:?}");
}

/// Review finding: `/tmp` was sized by the output limit (4 GiB for a task), in the host's
/// memory, past the task's memory limit, which `RLIMIT_AS` does not count it against.
#[test]
fn tmp_holds_no_more_than_the_tasks_memory_limit() {
    if !available() {
        return;
    }
    let task = task();
    let limits = Limits { memory_bytes: 64 << 20, file_bytes: 8 << 20, output_bytes: 1 << 30, ..limits() };
    let filler = "i=0; while dd if=/dev/zero of=/tmp/f$i bs=1M count=4 2>/dev/null; do i=$((i+1)); done; echo $i";
    let (ended, lines) = run(&task, filler, &limits, &running());
    assert_eq!(ended, Ended::Exited(0), "{lines:?}");
    let files: u64 = lines.last().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("{lines:?}"));
    assert!(files * 4 <= 64, "{} MiB written to /tmp under a 64 MiB memory limit", files * 4);
}

#[test]
fn a_fork_bomb_a_memory_hog_and_output_fillers_are_stopped_by_their_limits() {
    if !available() {
        return;
    }
    let task = task();
    let tight =
        Limits { processes: 16, memory_bytes: 64 << 20, file_bytes: 8 << 20, output_bytes: 20 << 20, ..limits() };
    // 200 processes asked for, 16 allowed: forks fail and the script goes on.
    let (ended, lines) =
        run(&task, "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo forked", &tight, &running());
    assert!(matches!(ended, Ended::Exited(_)), "{ended:?} {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("can't fork") || l.contains("Resource temporarily unavailable")),
        "{lines:?}"
    );
    let gone = Instant::now();
    while processes_running("sleep 30") > 0 {
        assert!(gone.elapsed() < Duration::from_secs(5), "the forked processes outlived the sandbox");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (ended, lines) = run(&task, "dd if=/dev/zero of=/dev/null bs=200M count=1", &tight, &running());
    assert_eq!(ended, Ended::Exited(1), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("memory")), "{lines:?}");

    // Killed by SIGXFSZ (25) at the limit; the sandbox reports it as a shell would.
    let (ended, _) = run(&task, "dd if=/dev/zero of=/output/big bs=1M count=100", &tight, &running());
    assert_eq!(ended, Ended::Exited(128 + 25), "one file past the file size limit");
    assert_eq!(fs::metadata(task.output.join("big")).unwrap().len(), 8 << 20);
    fs::remove_file(task.output.join("big")).unwrap();

    let filler = "i=0; while true; do dd if=/dev/zero of=/output/f$i bs=1M count=4 2>/dev/null; i=$((i+1)); done";
    let started = Instant::now();
    let (ended, _) = run(&task, filler, &tight, &running());
    assert_eq!(ended, Ended::OutputFull);
    assert!(started.elapsed() < Duration::from_secs(20));
    for entry in fs::read_dir(&task.output).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    // The runtime's directory counts with the outputs: it is no way around their limit.
    let filler = filler.replace("/output/", "/ogpu/");
    let (ended, _) = run(&task, &filler, &tight, &running());
    assert_eq!(ended, Ended::OutputFull);
    for entry in fs::read_dir(&task.runtime).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }

    // Empty files take no bytes but do take room: each counts as a block.
    let (ended, lines) = run(&task, "i=0; while true; do touch /output/e$i; i=$((i+1)); done", &tight, &running());
    assert_eq!(ended, Ended::OutputFull, "{lines:?}");
}

/// Processes on this machine whose command line is `words`.
fn processes_running(words: &str) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| fs::read(entry.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).replace('\0', " ").trim() == words)
        .count()
}

#[test]
fn a_timeout_or_a_cancel_kills_every_process_of_the_sandbox() {
    if !available() {
        return;
    }
    let task = task();
    let short = Limits { wall: Duration::from_secs(2), ..limits() };
    let script = "sleep 987 & sleep 987 & (sleep 987 &) ; echo started; sleep 987";
    let started = Instant::now();
    let (ended, lines) = run(&task, script, &short, &running());
    assert_eq!(ended, Ended::TimedOut, "{lines:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_running("sleep 987"), 0, "every process died with the sandbox");

    let cancel = AtomicBool::new(false);
    let (ended, _) = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        run(&task, "sleep 986 & sleep 986", &limits(), &cancel)
    });
    assert_eq!(ended, Ended::Cancelled);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_running("sleep 986"), 0);
}

/// A machine's NVIDIA driver as `nvidia::Driver` finds it, made by the test under a root
/// of its own (no GPU here): a character device by a GPU's name (it is `/dev/null`'s,
/// 1:3, which only root may make), libcuda with its version link, and nvidia-smi.
fn machine_with_a_driver() -> Option<tempfile::TempDir> {
    let root = tempfile::tempdir().unwrap();
    let (dev, lib) = (root.path().join("dev"), root.path().join("usr/lib/x86_64-linux-gnu"));
    fs::create_dir_all(&dev).unwrap();
    fs::create_dir_all(&lib).unwrap();
    fs::create_dir_all(root.path().join("usr/bin")).unwrap();
    let made = ["nvidia0", "nvidiactl"].iter().all(|name| {
        let path = dev.join(name);
        let c_path = std::ffi::CString::new(path.clone().into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; mknod reads nothing else.
        let made = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) == 0 };
        // Readable and writable by all, as the driver's nodes are (mknod applies the umask).
        made && fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).is_ok()
    });
    fs::write(lib.join("libcuda.so.999.1"), "the driver's libcuda\n").unwrap();
    std::os::unix::fs::symlink("libcuda.so.999.1", lib.join("libcuda.so.1")).unwrap();
    fs::write(lib.join("libnotnvidia.so"), "not the driver's\n").unwrap();
    fs::write(root.path().join("usr/bin/nvidia-smi"), "#!/bin/sh\n").unwrap();
    made.then_some(root)
}

#[test]
fn a_command_that_asks_for_gpus_gets_the_drivers_devices_and_libraries_and_no_other() {
    if !available() {
        return;
    }
    let Some(machine) = machine_with_a_driver() else {
        ogpu_testkit::available!("root, to make device nodes", false);
        return;
    };
    let driver = ogpu_container::nvidia::Driver::find(machine.path()).expect("the driver is found");
    assert_eq!(driver.devices.len(), 2, "{driver:?}");
    let task = task();
    let mounts = Mounts { driver: Some(&driver), ..task.mounts() };
    let script = "ls /dev; cat /ogpu/nvidia/lib/libcuda.so.1; ls /ogpu/nvidia/lib /ogpu/nvidia/bin; \
                  echo written > /dev/nvidia0 && echo the device opens";
    let (ended, lines) = run_in(&mounts, script, &limits(), &running());
    assert_eq!(ended, Ended::Exited(0), "{lines:?}");
    for expected in
        ["nvidia0", "nvidiactl", "the driver's libcuda", "libcuda.so.999.1", "nvidia-smi", "the device opens"]
    {
        assert!(lines.iter().any(|line| line == expected), "{expected:?} in {lines:?}");
    }
    assert!(!lines.iter().any(|line| line.contains("libnotnvidia")), "only the driver's libraries: {lines:?}");

    // Without it, none of this is there.
    let (ended, lines) = run(&self::task(), "ls /dev /ogpu", &limits(), &running());
    assert_eq!(ended, Ended::Exited(0));
    assert!(!lines.iter().any(|line| line.starts_with("nvidia")), "{lines:?}");
}
