//! The deterministic hash of an output directory: what executors commit to and what
//! replicas compare bit for bit, so it must not depend on the order a file system lists
//! entries in, on timestamps or on anything but file names and contents.
//!
//! Each file is hashed as a blob (plain blake3, so its hash is also its address in the blob
//! store). The directory is described by a manifest (`ogpu_core::manifest`), one line per
//! file sorted by path, and the directory's hash is the manifest's own blob hash.
//! Only regular files count: empty directories vanish, and symbolic links or special
//! files are refused, since they could point outside the directory or block the reader.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use ogpu_core::manifest;
pub use ogpu_core::manifest::OutputFile;
use ogpu_core::{BlobHash, Hash};

use crate::error::TaskError;

/// What a run may leave in its output directory: entries (files and directories) and
/// bytes. Past either, the run fails rather than fill the provider's disk or make it hash
/// and upload without end.
pub const MAX_OUTPUT_FILES: usize = 10_000;
pub const MAX_OUTPUT_BYTES: u64 = 4 << 30;

/// The hash of a directory, the files it covers sorted by path, and the manifest that
/// hashes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirDigest {
    pub hash: Hash,
    pub files: Vec<OutputFile>,
    pub manifest: Vec<u8>,
}

/// Reads a manifest back, refusing anything [`digest_dir`] would not have written.
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<OutputFile>, TaskError> {
    manifest::parse(bytes).map_err(|error| TaskError::BadOutput(error.to_string()))
}

/// The deterministic hash of the files under `root`.
pub fn hash_dir(root: &Path) -> Result<Hash, TaskError> {
    digest_dir(root).map(|digest| digest.hash)
}

/// Whether what is under `root` is within the output quota: counts entries and adds up
/// file sizes without reading them, and stops at the first excess. Symbolic links and
/// special files count as entries of no size ([`digest_dir`] refuses them).
pub(crate) fn within_output_quota(root: &Path) -> Result<(), TaskError> {
    let (mut entries, mut bytes) = (0usize, 0u64);
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(TaskError::io("listing", &dir))? {
            let entry = entry.map_err(TaskError::io("listing", &dir))?;
            let kind = entry.file_type().map_err(TaskError::io("inspecting", &entry.path()))?;
            entries += 1;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                bytes += entry.metadata().map_err(TaskError::io("inspecting", &entry.path()))?.len();
            }
            if entries > MAX_OUTPUT_FILES || bytes > MAX_OUTPUT_BYTES {
                return Err(TaskError::OutputLimit { files: MAX_OUTPUT_FILES, bytes: MAX_OUTPUT_BYTES });
            }
        }
    }
    Ok(())
}

/// Hashes every file under `root` and the directory as a whole, once it is within the
/// output quota.
pub fn digest_dir(root: &Path) -> Result<DirDigest, TaskError> {
    within_output_quota(root)?;
    let mut files = Vec::new();
    // An explicit stack rather than recursion: a program can nest directories deeply.
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(TaskError::io("listing", &dir))? {
            let entry = entry.map_err(TaskError::io("listing", &dir))?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| TaskError::BadOutput(format!("{:?} in {prefix:?} is not a UTF-8 file name", name)))?;
            let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            manifest::check_path(&relative).map_err(TaskError::BadOutput)?;
            // `DirEntry::file_type` does not follow symbolic links, so a link shows as one.
            let kind = entry.file_type().map_err(TaskError::io("inspecting", &entry.path()))?;
            if kind.is_dir() {
                pending.push((entry.path(), relative));
            } else if kind.is_file() {
                files.push(hash_file(&entry.path(), relative)?);
            } else {
                return Err(TaskError::BadOutput(format!(
                    "{relative} is a symbolic link or special file; only regular files can be delivered"
                )));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = manifest::write(&files);
    Ok(DirDigest { hash: manifest::hash(&manifest), files, manifest })
}

fn hash_file(path: &Path, relative: String) -> Result<OutputFile, TaskError> {
    let file = File::open(path).map_err(TaskError::io("opening", path))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file).map_err(TaskError::io("reading", path))?;
    Ok(OutputFile { path: relative, size: hasher.count(), hash: BlobHash(Hash(*hasher.finalize().as_bytes())) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, contents: &[u8]) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (relative, contents) in files {
            write(dir.path(), relative, contents);
        }
        dir
    }

    const FILES: [(&str, &[u8]); 4] = [("a.txt", b"alpha"), ("b/c.bin", &[0, 1, 2]), ("b/d/e", b""), ("z", b"zulu")];

    #[test]
    fn the_hash_ignores_creation_order_and_empty_directories() {
        let forward = dir_with(&FILES);
        let mut reversed = FILES;
        reversed.reverse();
        let backward = dir_with(&reversed);
        fs::create_dir_all(backward.path().join("empty/deeper")).unwrap();
        let digest = digest_dir(forward.path()).unwrap();
        assert_eq!(digest_dir(backward.path()).unwrap(), digest);
        let paths: Vec<&str> = digest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "b/c.bin", "b/d/e", "z"]);
        assert_eq!(digest.files[1].size, 3);
        assert_eq!(digest.files[1].hash, BlobHash(Hash::of_bytes(&[0, 1, 2])));
    }

    #[test]
    fn the_hash_changes_with_any_content_or_name() {
        let base = hash_dir(dir_with(&FILES).path()).unwrap();
        let mut one_byte = FILES;
        one_byte[1].1 = &[0, 1, 3];
        assert_ne!(hash_dir(dir_with(&one_byte).path()).unwrap(), base);
        let mut renamed = FILES;
        renamed[3].0 = "y";
        assert_ne!(hash_dir(dir_with(&renamed).path()).unwrap(), base);
        // Moving a file into a directory of the same name as a prefix is a different output.
        let mut moved = FILES;
        moved[0].0 = "a/txt";
        assert_ne!(hash_dir(dir_with(&moved).path()).unwrap(), base);
        assert_ne!(hash_dir(dir_with(&FILES[..3]).path()).unwrap(), base);
        assert_ne!(hash_dir(dir_with(&[]).path()).unwrap(), base);
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_refused() {
        let dir = dir_with(&FILES);
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("b/link")).unwrap();
        let error = hash_dir(dir.path()).unwrap_err();
        assert!(matches!(&error, TaskError::BadOutput(m) if m.contains("b/link")), "{error}");
    }

    #[test]
    fn the_manifest_hashes_to_the_directory_hash_and_reads_back() {
        let digest = digest_dir(dir_with(&FILES).path()).unwrap();
        assert_eq!(Hash::of_bytes(&digest.manifest), digest.hash);
        assert_eq!(parse_manifest(&digest.manifest).unwrap(), digest.files);
        let text = String::from_utf8(digest.manifest).unwrap();
        for forged in [
            text.replace("b/c.bin", "../c.bin"),
            text.replace("b/c.bin", "/etc/c.bin"),
            text.replace(" 3 ", " three "),
            text.replace("ogpu-output v1", "ogpu-output v0"),
            text.trim_end().to_string(),
            text.replace("\n", "\r\n"),
        ] {
            assert!(parse_manifest(forged.as_bytes()).is_err(), "{forged:?}");
        }
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = hash_dir(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(error, TaskError::Io(_)), "{error}");
    }
}
