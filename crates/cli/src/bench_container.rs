//! `ogpu bench container`: what the container runtime adds to a command, against the same
//! command run directly with no sandbox, in the same run. The image is Debian's static
//! busybox (`busybox-static`) written by `ogpu image build`'s writer, cached before the
//! first timed run, as a provider's cache holds an image it ran before.
//!
//! - Start-up: `sh -c true` through `ContainerRuntime::run` (the archive written and
//!   read, the root filesystem leased from the cache, bubblewrap and its namespaces, the
//!   outputs hashed) against `busybox sh -c true` spawned directly; medians of 20 each.
//! - Compute: a shell loop calibrated to take about `seconds` directly, then run both ways
//!   twice, alternating; the best of each, and the ratio.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ogpu_container::ImageConfig;
use ogpu_core::spec::{Limits, WorkloadKind};
use ogpu_runtime::ContainerRuntime;
use serde_json::json;

use crate::bench::median;
use crate::bench_runtime::run_job;

const BUSYBOX: &str = "/bin/busybox";
const STARTS: usize = 20;
const LIMITS: Limits = Limits { fuel: 1, memory_mb: 512, timeout_s: 600 };

pub fn run(seconds: u64) -> Result<()> {
    if !Path::new(BUSYBOX).is_file() || !Path::new(ogpu_container::sandbox::BWRAP).is_file() {
        bail!(
            "the bench needs {BUSYBOX} and {} (Debian: apt-get install busybox-static bubblewrap)",
            ogpu_container::sandbox::BWRAP
        );
    }
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("bin"))?;
    std::fs::copy(BUSYBOX, tree.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh"))?;
    let config = ImageConfig { entrypoint: vec!["/bin/sh".into(), "-c".into()], ..ImageConfig::default() };
    let archive = dir.path().join("busybox.tar");
    ogpu_container::build::write_archive(&tree, &config, &archive)?;
    let program = std::fs::read(&archive)?;
    let runtime = ContainerRuntime::new(&dir.path().join("images"))?;
    let shell = tree.join("bin/busybox");

    // Each in seconds.
    let in_container = |script: &str| -> Result<f64> {
        let started = Instant::now();
        let args = [script.to_string()];
        run_job(&runtime, WorkloadKind::Container, &program, &[], &args, LIMITS, &|_| {})?;
        Ok(started.elapsed().as_secs_f64())
    };
    let directly = |script: &str| -> Result<f64> {
        let started = Instant::now();
        let status = Command::new(&shell).args(["sh", "-c", script]).status().context("running busybox")?;
        if !status.success() {
            bail!("busybox sh -c {script:?}: {status}");
        }
        Ok(started.elapsed().as_secs_f64())
    };
    // The image unpacked into the cache.
    in_container("true")?;
    let container_start = median((0..STARTS).map(|_| in_container("true")).collect::<Result<Vec<_>>>()?);
    let direct_start = median((0..STARTS).map(|_| directly("true")).collect::<Result<Vec<_>>>()?);

    let script = |n: u64| format!("i=0; while [ $i -lt {n} ]; do i=$((i+1)); done");
    let probe = 200_000;
    let per_iteration = directly(&script(probe))? / probe as f64;
    let iterations = ((seconds as f64 / per_iteration) as u64).max(1);
    let (mut container_compute, mut direct_compute) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..2 {
        direct_compute = direct_compute.min(directly(&script(iterations))?);
        container_compute = container_compute.min(in_container(&script(iterations))?);
    }
    let ms = |seconds: f64| (seconds * 1e4).round() / 10.0;
    let report = json!({
        "image_bytes": program.len(),
        "start_container_ms": ms(container_start),
        "start_direct_ms": ms(direct_start),
        "start_overhead_ms": ms((container_start - direct_start).max(0.0)),
        "compute_iterations": iterations,
        "compute_container_s": container_compute,
        "compute_direct_s": direct_compute,
        "compute_overhead_ratio": container_compute / direct_compute - 1.0,
    });
    println!("{report}");
    Ok(())
}
