//! Running a command in a root filesystem under bubblewrap (Debian's `bubblewrap`), as a
//! container task runs: new user, PID, network, IPC, UTS and cgroup namespaces, every
//! capability dropped, a seccomp filter refusing what a task has no business doing
//! (mounting, tracing, loading kernel modules, keyrings, ...), the image read-only at `/`,
//! the inputs read-only at `/input`, only `/output`, the runtime's `/ogpu` and a fresh
//! `/tmp` writable, a fresh `/proc` and `/dev`, and no network but a loopback that is down.
//!
//! Limits: memory (address space), processes and file size by rlimits, set before
//! bubblewrap starts so the whole sandbox inherits them; a watchdog kills the sandbox (its
//! PID namespace, every process in it) when the wall-clock limit passes, the run is
//! cancelled, or `/output` and `/ogpu` together grow past the output limit. When the agent runs as root, the sandbox
//! runs as an unprivileged user instead, so that the process limit binds (the kernel does
//! not count root's processes) and nothing in it is root outside.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, fchown};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use crate::nvidia::Driver;

/// What the sandbox mounts.
#[derive(Debug, Clone, Copy)]
pub struct Mounts<'a> {
    /// The image's root filesystem, mounted read-only at `/`: it must have the mount
    /// points `proc`, `dev`, `tmp`, `input`, `output` and `ogpu` (the cache makes them).
    pub rootfs: &'a Path,
    /// Mounted read-only at `/input`.
    pub input: &'a Path,
    /// Mounted read-write at `/output`. (Run as root, it and the directories directly in
    /// it become the sandbox user's.)
    pub output: &'a Path,
    /// Mounted read-write at `/ogpu`: the runtime's exchange with the program (its
    /// progress file, a checkpoint to resume from), not part of the result; handed over
    /// as `output` is.
    pub runtime: &'a Path,
    /// The machine's NVIDIA driver, for a command that asks for GPUs.
    pub driver: Option<&'a Driver>,
}

/// The command: its words, its whole environment, and where it starts.
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// An absolute path in the image; `/` if empty.
    pub working_dir: String,
}

/// The most a run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Address space of each process, in bytes (not with an NVIDIA driver: CUDA reserves
    /// address ranges far beyond the memory it uses), and what `/tmp` holds.
    pub memory_bytes: u64,
    /// Processes and threads at once.
    pub processes: u64,
    /// The largest file a process may write, in bytes.
    pub file_bytes: u64,
    /// What `/output` and `/ogpu` may hold together, in bytes.
    pub output_bytes: u64,
    /// Wall-clock time.
    pub wall: Duration,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The command exited with this code; killed by a signal, it exits with 128 and the
    /// signal's number, as a shell reports it (a process past its file size limit gets
    /// `SIGXFSZ`, 25).
    Exited(i32),
    /// bubblewrap itself was killed by this signal.
    Signalled(i32),
    /// The wall-clock limit passed; every process was killed.
    TimedOut,
    /// The run was cancelled; every process was killed.
    Cancelled,
    /// `/output` grew past its limit; every process was killed.
    OutputFull,
}

/// Why a sandbox could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bubblewrap is not installed (Debian: `apt-get install bubblewrap`).
    #[error("cannot start bubblewrap (`bwrap`; Debian's package `bubblewrap`): {0}")]
    NoBubblewrap(io::Error),
    /// Preparing the run failed on this machine.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// Run as root, the sandbox is `nobody`, and bubblewrap (0.8) finds the directories it
    /// mounts by their path as that user: every directory above them must let others pass.
    #[error(
        "the sandbox runs as nobody and cannot reach {path}: {blocked} does not let others pass (chmod o+x), or choose a directory that does"
    )]
    Unreachable {
        /// The directory to mount.
        path: std::path::PathBuf,
        /// The directory above it that others may not pass.
        blocked: std::path::PathBuf,
    },
    /// A word of the command, a value of its environment or its working directory holds a
    /// NUL byte, which no program can be given.
    #[error("{0:?} holds a NUL byte")]
    Nul(String),
    /// An environment variable's name is empty or holds `=` or a NUL.
    #[error("{0:?} is not the name of an environment variable")]
    Env(String),
    /// The seccomp filter does not compile (a bug, not the task's doing).
    #[error("the seccomp filter: {0}")]
    Seccomp(String),
}

fn io(what: impl ToString) -> impl FnOnce(io::Error) -> SandboxError {
    let what = what.to_string();
    move |source| SandboxError::Io { what, source }
}

/// bubblewrap, where Debian's package puts it.
pub const BWRAP: &str = "/usr/bin/bwrap";

/// The user a sandbox runs as when the agent is root: `nobody`.
pub const UNPRIVILEGED: u32 = 65534;

/// The longest line passed on whole; longer ones are cut into pieces of this size.
const MAX_LINE: usize = 16 << 10;
/// The most lines passed on between two checks of the watchdog.
const LINES_PER_TICK: usize = 256;

/// Runs `command` in the sandbox, handing each line it prints to `on_line`; returns how it
/// ended. Every process of the sandbox is gone when this returns.
pub fn run(
    mounts: &Mounts,
    command: &Command,
    limits: &Limits,
    cancel: &AtomicBool,
    mut on_line: impl FnMut(Stream, &str),
) -> Result<Ended, SandboxError> {
    if let Some((name, _)) = command.env.iter().find(|(name, _)| name.is_empty() || name.contains(['=', '\0'])) {
        return Err(SandboxError::Env(name.clone()));
    }
    let words = command.argv.iter().chain(command.env.values()).chain([&command.working_dir]);
    if let Some(word) = words.into_iter().find(|word| word.contains('\0')) {
        return Err(SandboxError::Nul(word.replace('\0', "\\0")));
    }
    let filter = seccomp_file()?;
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    // The directories go to bubblewrap open and none may be a link: what was checked is
    // what is mounted. (bubblewrap 0.8 still finds them by path, hence the check below
    // that the unprivileged user can reach them.)
    let open = |path: &Path| {
        let opened = File::options().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(path);
        opened.map_err(io(format!("opening the directory {}", path.display())))
    };
    let (rootfs, input) = (open(mounts.rootfs)?, open(mounts.input)?);
    let (output, runtime) = (open(mounts.output)?, open(mounts.runtime)?);
    if root {
        for path in [mounts.rootfs, mounts.input, mounts.output, mounts.runtime] {
            reachable_by_others(path)?;
        }
        // The unprivileged user writes the outputs and the runtime's files, and into the
        // directories the runtime made there for it (a container's checkpoints).
        for (dir, path, what) in [(&output, mounts.output, "/output"), (&runtime, mounts.runtime, "/ogpu")] {
            fchown(dir, Some(UNPRIVILEGED), Some(UNPRIVILEGED))
                .map_err(io(format!("handing {what} to the sandbox")))?;
            hand_over_directories_in(path).map_err(io(format!("handing the directories in {what} to the sandbox")))?;
        }
    }
    let fd = |file: &File| file.as_raw_fd().to_string();
    // By its path, with an environment of its own: the task's environment is the
    // command's, set inside the sandbox, and never steers what runs outside it.
    let mut bwrap = std::process::Command::new(BWRAP);
    bwrap.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").arg("--clearenv");
    for (name, value) in &command.env {
        bwrap.args(["--setenv", name, value]);
    }
    bwrap
        .args([
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ])
        // The same user and host name on every provider: a task that writes them into its
        // outputs must not give an executor and its verifier different results.
        .args(["--uid", "65534", "--gid", "65534", "--hostname", "ogpu"])
        .args(["--ro-bind-fd", &fd(&rootfs), "/"])
        .args(["--proc", "/proc", "--dev", "/dev"])
        // File systems in memory are sized, or they would hold as much as the host has:
        // `/tmp` by the task's memory, which its address-space limit does not count it in.
        .args(["--size", &limits.memory_bytes.to_string(), "--tmpfs", "/tmp"])
        .args(["--size", &(64u64 << 20).to_string(), "--tmpfs", "/dev/shm"])
        .args(["--ro-bind-fd", &fd(&input), "/input"])
        .args(["--bind-fd", &fd(&output), "/output"])
        .args(["--bind-fd", &fd(&runtime), "/ogpu"])
        .args(mounts.driver.map(Driver::bwrap_args).unwrap_or_default())
        .arg("--chdir")
        .arg(if command.working_dir.is_empty() { "/" } else { &command.working_dir })
        .args(["--seccomp", &fd(&filter)])
        .arg("--")
        .args(&command.argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let inherited = [&filter, &rootfs, &input, &output, &runtime].map(|file| file.as_raw_fd());
    let processes = process_limit(root, limits.processes);
    let address_space = if mounts.driver.is_some() { libc::RLIM_INFINITY } else { limits.memory_bytes };
    let rlimits = [
        (libc::RLIMIT_AS, address_space),
        (libc::RLIMIT_NPROC, processes),
        (libc::RLIMIT_FSIZE, limits.file_bytes),
        (libc::RLIMIT_CORE, 0),
        (libc::RLIMIT_NOFILE, 4096),
        (libc::RLIMIT_MEMLOCK, 64 << 10),
    ];
    // SAFETY: between fork and exec only async-signal-safe system calls run (fcntl,
    // setrlimit, setgroups, setgid, setuid), on values computed before the fork.
    unsafe {
        bwrap.pre_exec(move || {
            // bubblewrap reads these descriptors: they must survive the exec.
            for fd in inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (resource, value) in rlimits {
                let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if root
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(UNPRIVILEGED) != 0
                    || libc::setuid(UNPRIVILEGED) != 0)
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = bwrap.spawn().map_err(SandboxError::NoBubblewrap)?;
    drop((filter, rootfs, input, output, runtime));
    let lines = read_lines(&mut child);
    let ended = watch(&mut child, mounts, limits, cancel, &lines, &mut on_line);
    // Lines still in the pipes: the readers reach their ends once every process of the
    // sandbox is gone, which follows bubblewrap's own end; a second bounds the wait all the
    // same.
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok((stream, line)) => on_line(stream, &line),
            Err(_) => break,
        }
    }
    ended
}

/// Waits for the sandbox to exit, passing its lines on, and kills it when a limit passes
/// or the run is cancelled.
fn watch(
    child: &mut Child,
    mounts: &Mounts,
    limits: &Limits,
    cancel: &AtomicBool,
    lines: &Receiver<(Stream, String)>,
    on_line: &mut impl FnMut(Stream, &str),
) -> Result<Ended, SandboxError> {
    let started = Instant::now();
    let mut measured = Instant::now();
    loop {
        // A few lines a tick: a task that floods its output cannot keep the watchdog
        // from its checks (the readers wait while the channel is full).
        for (stream, line) in lines.try_iter().take(LINES_PER_TICK) {
            on_line(stream, &line);
        }
        if let Some(status) = child.try_wait().map_err(io("waiting for the sandbox"))? {
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(signal)) => Ended::Signalled(signal),
                (None, None) => Ended::Signalled(0),
            });
        }
        let over = if cancel.load(Ordering::Relaxed) {
            Some(Ended::Cancelled)
        } else if started.elapsed() >= limits.wall {
            Some(Ended::TimedOut)
        } else if measured.elapsed() >= Duration::from_millis(100) {
            measured = Instant::now();
            // What cannot be measured (a tree too deep to walk) counts as too much.
            let written = footprint(mounts.output).zip(footprint(mounts.runtime)).map(|(a, b)| a.saturating_add(b));
            written.is_none_or(|bytes| bytes > limits.output_bytes).then_some(Ended::OutputFull)
        } else {
            None
        };
        if let Some(ended) = over {
            // bubblewrap's child is PID 1 of the sandbox's namespace and dies with
            // bubblewrap (--die-with-parent); the kernel then kills every process left.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(ended);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Hands the directories directly in `dir` (not links, not what is below them) to the
/// unprivileged user.
fn hand_over_directories_in(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::os::unix::fs::lchown(entry.path(), Some(UNPRIVILEGED), Some(UNPRIVILEGED))?;
        }
    }
    Ok(())
}

/// Whether every directory above `path` lets others pass (its `o+x` bit), as the
/// unprivileged user must to reach it.
fn reachable_by_others(path: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    let absolute = std::path::absolute(path).map_err(io(format!("resolving {}", path.display())))?;
    for above in absolute.ancestors().skip(1) {
        let mode = std::fs::metadata(above).map_err(io(format!("reading {}", above.display())))?.permissions().mode();
        if mode & 0o001 == 0 {
            return Err(SandboxError::Unreachable { path: path.to_path_buf(), blocked: above.to_path_buf() });
        }
    }
    Ok(())
}

/// The lines of the child's stdout and stderr, read on threads of their own.
fn read_lines(child: &mut Child) -> Receiver<(Stream, String)> {
    let (send, receive) = sync_channel(LINES_PER_TICK);
    let streams: [(Stream, Option<Box<dyn Read + Send>>); 2] = [
        (Stream::Stdout, child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
        (Stream::Stderr, child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
    ];
    for (stream, reader) in streams {
        let (Some(mut reader), send) = (reader, send.clone()) else { continue };
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buffer = [0u8; 8192];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                pending.extend_from_slice(&buffer[..read]);
                while let Some(end) =
                    pending.iter().position(|b| *b == b'\n').or((pending.len() >= MAX_LINE).then_some(MAX_LINE))
                {
                    let line: Vec<u8> = pending.drain(..=end.min(pending.len() - 1)).collect();
                    let text = String::from_utf8_lossy(&line).trim_end_matches('\n').to_string();
                    if send.send((stream, text)).is_err() {
                        return;
                    }
                }
            }
            if !pending.is_empty() {
                let _ = send.send((stream, String::from_utf8_lossy(&pending).into_owned()));
            }
        });
    }
    receive
}

/// The process limit to set: as root the sandbox runs as its own user, which has no other
/// processes; otherwise the limit counts the agent's own user's processes and threads
/// too, so they are added.
fn process_limit(root: bool, processes: u64) -> u64 {
    if root {
        return processes;
    }
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    processes + threads_of(uid)
}

/// How many threads the user `uid` runs now.
fn threads_of(uid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .any(|l| l.strip_prefix("Uid:").and_then(|v| v.split_whitespace().next()) == Some(&uid.to_string()))
        })
        .filter_map(|status| {
            status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// What the tree under `dir` takes: its files' bytes, and at least a block for every
/// entry (so that empty files and directories count too), not following links; `None` if
/// some of it cannot be read. Walked without recursion, holding no directory open.
fn footprint(dir: &Path) -> Option<u64> {
    const BLOCK: u64 = 4096;
    let mut pending = vec![dir.to_path_buf()];
    let mut total = 0u64;
    while let Some(next) = pending.pop() {
        let entries: Vec<_> = std::fs::read_dir(&next).ok()?.collect::<Result<_, _>>().ok()?;
        for entry in entries {
            let meta = entry.path().symlink_metadata().ok()?;
            total = total.saturating_add(meta.len().max(BLOCK));
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Some(total)
}

/// System calls a task is refused (with `EPERM`): mounting and pivoting, tracing other
/// processes, loading kernel modules or new kernels, the kernel keyrings, BPF and perf
/// events, new namespaces, and changing the clock, swap or the machine's state.
const DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_fspick,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// The seccomp filter: [`DENIED`] refused with `EPERM`, everything else allowed.
fn seccomp_program() -> Result<BpfProgram, SandboxError> {
    let rules = DENIED.iter().map(|call| (*call, Vec::new())).collect();
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))
}

/// Refuses every x32 system call (numbers with bit 30 set) before the filter proper,
/// which checks x86-64 numbers only: on a kernel with x32, the denied calls would
/// otherwise pass under their x32 numbers. Loads the number (offset 0 of `seccomp_data`)
/// and returns `EPERM` if it is at least 0x4000_0000; falls through otherwise.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Vec<seccompiler::sock_filter> {
    let instruction = |code: u16, jt: u8, jf: u8, k: u32| seccompiler::sock_filter { code, jt, jf, k };
    vec![
        // BPF_LD | BPF_W | BPF_ABS: the number.
        instruction(0x20, 0, 0, 0),
        // BPF_JMP | BPF_JGE | BPF_K: an x32 number goes on to the next instruction.
        instruction(0x35, 0, 1, 0x4000_0000),
        // BPF_RET | BPF_K: SECCOMP_RET_ERRNO with EPERM.
        instruction(0x06, 0, 0, 0x0005_0000 | libc::EPERM as u32),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn x32_guard() -> Vec<seccompiler::sock_filter> {
    Vec::new()
}

/// The compiled seccomp filter in a file (bubblewrap reads it from a descriptor).
fn seccomp_file() -> Result<File, SandboxError> {
    let program = [x32_guard(), seccomp_program()?].concat();
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in &program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    let mut file = tempfile_in_memory()?;
    file.write_all(&bytes).map_err(io("writing the seccomp filter"))?;
    // Read back from the start, by a descriptor of its own.
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(io("reopening the seccomp filter"))
}

/// An anonymous file in memory (`memfd_create`), removed when its last descriptor closes.
fn tempfile_in_memory() -> Result<File, SandboxError> {
    // SAFETY: the name is a valid C string; the descriptor returned is owned by the File.
    let fd = unsafe { libc::memfd_create(c"ogpu-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io("creating the seccomp filter's file")(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the filter refuses that an unprivileged process may otherwise do (trace
    /// itself, join a keyring) and what only root may (load a module, mount), checked in
    /// a child process of this test with the filter installed, before it runs `true`.
    #[test]
    fn the_filter_refuses_tracing_module_loading_keyrings_and_mounts() {
        let program = seccomp_program().unwrap();
        fn refused(call: &str, result: libc::c_long) -> io::Result<()> {
            let errno = io::Error::last_os_error().raw_os_error();
            if result == -1 && errno == Some(libc::EPERM) {
                return Ok(());
            }
            Err(io::Error::other(format!("{call} was not refused: {result}, errno {errno:?}")))
        }
        let mut child = std::process::Command::new("true");
        // SAFETY: the closure makes system calls only, on memory prepared before the fork.
        unsafe {
            child.pre_exec(move || {
                seccompiler::apply_filter(&program).map_err(io::Error::other)?;
                refused("ptrace", libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0))?;
                refused("init_module", libc::syscall(libc::SYS_init_module, std::ptr::null::<u8>(), 0, c"".as_ptr()))?;
                // KEYCTL_JOIN_SESSION_KEYRING, with no name: a new anonymous keyring.
                refused("keyctl", libc::syscall(libc::SYS_keyctl, 1, 0))?;
                let mount = libc::mount(c"none".as_ptr(), c"/mnt".as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null());
                refused("mount", libc::c_long::from(mount))
            });
        }
        let status = child.status().unwrap();
        assert!(status.success());
    }
}
