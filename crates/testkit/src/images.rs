//! Container images for tests: an OCI layout archive of Debian's static busybox
//! (`busybox-static`, at [`BUSYBOX`]) with its applets linked in `/bin`, as
//! `skopeo copy ... oci-archive:` would write it.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Where Debian's `busybox-static` puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The applets linked in the image's `/bin`.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "ls", "touch", "test", "dd", "sleep", "wget", "mount", "head", "id", "unshare", "yes", "wc",
    "env", "true", "false",
];

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn append(builder: &mut tar::Builder<impl std::io::Write>, kind: tar::EntryType, path: &str, mode: u32, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    builder.append_data(&mut header, path, data).expect("writing to memory or a fresh file");
}

/// Writes the busybox image, with `config` as its image config's `config` (`Entrypoint`,
/// `Cmd`, `Env`, `WorkingDir`), to `dir/busybox.oci.tar`; returns its path. Panics if
/// busybox is missing: check [`BUSYBOX`] first.
pub fn busybox(dir: &Path, config: Value) -> PathBuf {
    let binary = fs::read(BUSYBOX).expect("busybox-static is installed");
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, tar::EntryType::Directory, "bin", 0o755, &[]);
    append(&mut layer, tar::EntryType::Regular, "bin/busybox", 0o755, &binary);
    for applet in APPLETS {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        layer.append_link(&mut header, format!("bin/{applet}"), "busybox").expect("writing to memory");
    }
    let layer = layer.into_inner().expect("writing to memory");
    let config = serde_json::to_vec(&json!({ "architecture": "amd64", "os": "linux", "config": config }))
        .expect("JSON serializes");
    let descriptor = |bytes: &[u8]| json!({ "digest": format!("sha256:{}", digest(bytes)), "size": bytes.len() });
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(&config),
        "layers": [descriptor(&layer)],
    }))
    .expect("JSON serializes");
    let index = serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": [descriptor(&manifest)] }))
        .expect("JSON serializes");
    let path = dir.join("busybox.oci.tar");
    let mut archive = tar::Builder::new(fs::File::create(&path).expect("the test's directory is writable"));
    append(&mut archive, tar::EntryType::Regular, "oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#);
    append(&mut archive, tar::EntryType::Regular, "index.json", 0o644, &index);
    for blob in [&manifest, &config, &layer] {
        append(&mut archive, tar::EntryType::Regular, &format!("blobs/sha256/{}", digest(blob)), 0o644, blob);
    }
    archive.finish().expect("the archive is written");
    path
}
