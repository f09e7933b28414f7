//! Writing an image archive from a directory tree, for images made without a container
//! engine (a root filesystem `mmdebstrap` made, a static binary and its files): the tree
//! becomes the one layer of an OCI layout archive, which [`Image::read`](crate::Image::read),
//! docker, podman and skopeo all read. What `ogpu image build` does.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::digest::Hashing;
use crate::{Digest, ImageConfig, ImageError, io_at};

/// Writes the tree under `root` as the one layer of an OCI layout archive at `out`, with
/// `config` as what it runs. Entries go in name order with their permission bits, owned by
/// root and dated 0, so the same tree gives the same archive. Regular files (hard links
/// as copies), directories and symbolic links only: anything else (a device node, a FIFO,
/// a socket) is refused by name, as a provider's unpacking would refuse it.
pub fn write_archive(root: &Path, config: &ImageConfig, out: &Path) -> Result<(), ImageError> {
    let partial = |suffix: &str| out.with_file_name(format!(".{}.{suffix}", file_name(out)));
    let layer_path = Removed(partial("layer"));
    let layer = write_layer(root, &layer_path.0)?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "Env": config.env,
            "WorkingDir": config.working_dir.clone().unwrap_or_default(),
        },
        "rootfs": { "type": "layers", "diff_ids": [layer.0.to_string()] },
    }))
    .map_err(|e| io_at(out)(io::Error::other(e)))?;
    let descriptor = |media_type: &str, digest: Digest, size: u64| json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size });
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", Digest::of(&config), config.len() as u64),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer.0, layer.1)],
    }))
    .map_err(|e| io_at(out)(io::Error::other(e)))?;
    let manifest_descriptor =
        descriptor("application/vnd.oci.image.manifest.v1+json", Digest::of(&manifest), manifest.len() as u64);
    let index = json!({ "schemaVersion": 2, "manifests": [manifest_descriptor] }).to_string();

    let archive_path = Removed(partial("tar"));
    let file = File::create(&archive_path.0).map_err(io_at(&archive_path.0))?;
    let mut archive = tar::Builder::new(BufWriter::new(file));
    let written = (|| {
        append_bytes(&mut archive, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        append_bytes(&mut archive, "index.json", index.as_bytes())?;
        for blob in [&manifest, &config] {
            append_bytes(&mut archive, &format!("blobs/sha256/{}", Digest::of(blob).hex()), blob)?;
        }
        let mut header = header(tar::EntryType::Regular, 0o644, layer.1);
        let layer_file = File::open(&layer_path.0)?;
        archive.append_data(&mut header, format!("blobs/sha256/{}", layer.0.hex()), layer_file)?;
        archive.into_inner()?.flush()
    })();
    written.map_err(io_at(&archive_path.0))?;
    fs::rename(&archive_path.0, out).map_err(io_at(out))
}

/// A file removed when dropped (if it is still there).
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "image".into(), |name| name.to_string_lossy().into_owned())
}

/// A header as every entry gets it: root's, dated 0.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn append_bytes(archive: &mut tar::Builder<impl Write>, path: &str, bytes: &[u8]) -> io::Result<()> {
    archive.append_data(&mut header(tar::EntryType::Regular, 0o644, bytes.len() as u64), path, bytes)
}

/// Writes the layer tar of `root` to `path`: its digest and size.
fn write_layer(root: &Path, path: &Path) -> Result<(Digest, u64), ImageError> {
    let file = File::create(path).map_err(io_at(path))?;
    let mut layer = tar::Builder::new(Hashing::new(BufWriter::new(file)));
    add_tree(&mut layer, root, Path::new(""))?;
    let mut hashing = layer.into_inner().map_err(io_at(path))?;
    hashing.flush().map_err(io_at(path))?;
    let size = fs::metadata(path).map_err(io_at(path))?.len();
    Ok((hashing.digest(), size))
}

/// Appends what is under `root/below`, in name order, directories before what they hold.
fn add_tree(layer: &mut tar::Builder<impl Write>, root: &Path, below: &Path) -> Result<(), ImageError> {
    let dir = root.join(below);
    let mut entries: Vec<_> = fs::read_dir(&dir).and_then(Iterator::collect).map_err(io_at(&dir))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let (path, name) = (entry.path(), below.join(entry.file_name()));
        let meta = fs::symlink_metadata(&path).map_err(io_at(&path))?;
        let mode = meta.mode() & 0o7777;
        let kind = meta.file_type();
        let appended = if kind.is_dir() {
            layer.append_data(&mut header(tar::EntryType::Directory, mode, 0), &name, io::empty())
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_at(&path))?;
            layer.append_link(&mut header(tar::EntryType::Symlink, 0o777, 0), &name, target)
        } else if kind.is_file() {
            // Exactly the bytes the header says, should the file change meanwhile.
            let file = File::open(&path).map_err(io_at(&path))?.take(meta.len());
            layer.append_data(&mut header(tar::EntryType::Regular, mode, meta.len()), &name, file)
        } else {
            let why =
                "only files, directories and symbolic links go into an image (a device node, FIFO or socket does not)";
            return Err(ImageError::Hostile { path: name.display().to_string(), why: why.into() });
        };
        appended.map_err(io_at(&path))?;
        if kind.is_dir() {
            add_tree(layer, root, &name)?;
        }
    }
    Ok(())
}
