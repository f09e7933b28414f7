//! Container images for tests: an OCI layout archive of Debian's static busybox
//! (`busybox-static`, at [`BUSYBOX`]) with its applets linked in `/bin`, written by
//! `ogpu_container::build` as `ogpu image build` writes one.

use std::fs;
use std::path::{Path, PathBuf};

use ogpu_container::ImageConfig;
use serde_json::Value;

/// Where Debian's `busybox-static` puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The applets linked in the image's `/bin`.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "ls", "touch", "test", "dd", "sleep", "wget", "mount", "head", "id", "unshare", "yes", "wc",
    "env", "true", "false", "seq",
];

/// Writes the busybox image, with `config` as its image config's `config` (`Entrypoint`,
/// `Cmd`, `Env`, `WorkingDir`), to `dir/busybox.oci.tar`; returns its path. Panics if
/// busybox is missing: check [`BUSYBOX`] first.
pub fn busybox(dir: &Path, config: Value) -> PathBuf {
    let tree = tempfile::tempdir_in(dir).expect("the test's directory is writable");
    let bin = tree.path().join("bin");
    fs::create_dir(&bin).expect("a fresh directory");
    fs::copy(BUSYBOX, bin.join("busybox")).expect("busybox-static is installed");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("a fresh directory");
    }
    let words = |key: &str| -> Vec<String> {
        config[key].as_array().into_iter().flatten().filter_map(|w| w.as_str().map(String::from)).collect()
    };
    let config = ImageConfig {
        entrypoint: words("Entrypoint"),
        cmd: words("Cmd"),
        env: words("Env"),
        working_dir: config["WorkingDir"].as_str().map(String::from),
    };
    let path = dir.join("busybox.oci.tar");
    ogpu_container::build::write_archive(tree.path(), &config, &path).expect("the archive is written");
    path
}
