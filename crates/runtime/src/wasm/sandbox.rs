//! The WASI context a module runs in: only its two directories, its arguments and captured
//! output, with every source of host-dependent values (clocks, randomness) made fixed.

use std::path::Path;
use std::time::Duration;

use ogpu_core::Hash;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{Deterministic, FsPerms, HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::{Job, TaskError};

/// `argv[0]`, the same on every provider.
const ARGV0: &str = "program";
/// Bytes of the stream `random_get` cycles through.
const RANDOM_BYTES: usize = 4096;

pub(super) fn wasi_context(
    job: &Job<'_>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
) -> Result<WasiP1Ctx, TaskError> {
    let random = random_stream(job);
    let mut builder = WasiCtxBuilder::new();
    builder
        .arg(ARGV0)
        .args(job.args)
        .stdout(stdout)
        .stderr(stderr)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(Deterministic::new(random.clone()))
        .insecure_random(Deterministic::new(random))
        .insecure_random_seed(0)
        // The caller is a blocking thread already; must come before the preopens, which
        // capture it.
        .allow_blocking_current_thread(true);
    preopen(&mut builder, job.inputs, "/input", FsPerms::ReadOnly)?;
    preopen(&mut builder, job.output, "/output", FsPerms::ReadWrite)?;
    Ok(builder.build_p1())
}

fn preopen(builder: &mut WasiCtxBuilder, host: &Path, guest: &str, perms: FsPerms) -> Result<(), TaskError> {
    builder.preopened_dir(host, guest, perms).map_err(|error| {
        TaskError::BadInput(format!("cannot open {} as {guest}: {}", host.display(), super::describe(&error)))
    })?;
    Ok(())
}

/// Reproducible bytes for `random_get`, different for each program and argument list.
fn random_stream(job: &Job<'_>) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = vec![job.program];
    parts.extend(job.args.iter().map(|arg| arg.as_bytes()));
    let key = Hash::tagged("ogpu/runtime/wasm/random", &parts);
    let mut bytes = vec![0; RANDOM_BYTES];
    blake3::Hasher::new_keyed(key.as_bytes()).finalize_xof().fill(&mut bytes);
    bytes
}

/// A clock that always reads zero: time would make outputs differ between replicas.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        0
    }
}
