//! What the end-to-end tests of real processes share.

#![allow(dead_code, reason = "each test binary uses the part it needs")]

pub mod market;

/// Pids of the processes whose command line contains `needle`.
pub fn pids_running(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether what a test needs is here; see `ogpu_testkit::available!`.
pub fn available(what: &str, present: bool) -> bool {
    ogpu_testkit::available!(what, present)
}
