//! Unpacking one layer (a tar, gzip- or zstd-compressed or not) into a directory of its
//! own, entry by entry, refusing what could reach outside it or give a task what it must
//! not have. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are not written: they are returned,
//! to be applied when layers are stacked.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hashing};
use crate::{ImageError, io_at};

/// How much one layer may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file contents.
    pub max_bytes: u64,
    /// Entries of any kind.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 16 GiB and a million entries: room for a CUDA image, not for a decompression bomb.
    fn default() -> Limits {
        Limits { max_bytes: 16 << 30, max_entries: 1_000_000 }
    }
}

/// What a layer removes from those below it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whiteouts {
    /// Paths removed.
    pub removed: Vec<PathBuf>,
    /// Directories whose lower contents are hidden.
    pub opaque: Vec<PathBuf>,
}

/// A layer unpacked: the digest of its bytes as read, what it removes, and the bytes of
/// its files.
#[derive(Debug)]
pub struct Unpacked {
    pub digest: Digest,
    pub whiteouts: Whiteouts,
    pub bytes: u64,
}

/// Unpacks the layer `raw` yields into `dest` (an empty directory), checking each entry;
/// reads `raw` to its end so that the digest returned covers every byte. On an error,
/// `dest` holds part of the layer and is the caller's to remove.
pub fn unpack(raw: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked, ImageError> {
    let mut hashing = Hashing::new(raw);
    let mut buffered = BufReader::new(&mut hashing);
    let outcome = {
        let head = buffered.fill_buf().map_err(io_at(dest))?;
        let decoded: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(&mut buffered))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::with_buffer(&mut buffered).map_err(io_at(dest))?)
        } else {
            Box::new(&mut buffered)
        };
        let budget = Budget::default();
        let decoded = Budgeted { inner: decoded, budget: budget.clone() };
        Writer { dest, limits, bytes: 0, entries: 0, whiteouts: Whiteouts::default(), budget }.unpack(decoded)?
    };
    // Whatever follows the tar's end (padding, another gzip member) is part of the blob.
    io::copy(&mut buffered, &mut io::sink()).map_err(io_at(dest))?;
    drop(buffered);
    let (whiteouts, bytes) = outcome;
    Ok(Unpacked { digest: hashing.digest(), whiteouts, bytes })
}

struct Writer<'a> {
    dest: &'a Path,
    limits: &'a Limits,
    bytes: u64,
    entries: u64,
    whiteouts: Whiteouts,
    budget: Budget,
}

/// The most a layer's tar may hold beyond its files' contents: headers, long names and
/// extended attributes, which the tar reader keeps in memory whole.
const METADATA: u64 = 64 << 20;

/// How many decompressed bytes a layer may yield: its files' declared sizes, counted as
/// each file is reached, and [`METADATA`] for everything else. Past it, reads fail.
#[derive(Clone, Default)]
struct Budget(std::rc::Rc<(std::cell::Cell<u64>, std::cell::Cell<u64>)>);

impl Budget {
    /// Allows `bytes` more: a file's contents about to be read.
    fn allow(&self, bytes: u64) {
        self.0.1.set(self.0.1.get().saturating_add(bytes));
    }

    /// Whether what was read stays within what was allowed.
    fn exceeded(&self) -> bool {
        self.0.0.get() > self.0.1.get().saturating_add(METADATA)
    }
}

/// The decompressed layer, read no further than its budget.
struct Budgeted<R> {
    inner: R,
    budget: Budget,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.budget.exceeded() {
            return Err(io::Error::other("the layer's headers take more than their allowance"));
        }
        let read = self.inner.read(buffer)?;
        self.budget.0.0.set(self.budget.0.0.get().saturating_add(read as u64));
        Ok(read)
    }
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

impl Writer<'_> {
    fn unpack(mut self, decoded: impl Read) -> Result<(Whiteouts, u64), ImageError> {
        let mut archive = tar::Archive::new(decoded);
        let broken =
            |error: io::Error| ImageError::Malformed { what: "a layer".into(), why: format!("not a tar: {error}") };
        let too_large = || ImageError::TooLarge { what: "bytes of headers", limit: METADATA };
        for entry in archive.entries().map_err(broken)? {
            // Headers, long names and extended attributes past their allowance stop the reads.
            let mut entry = match entry {
                Err(_) if self.budget.exceeded() => return Err(too_large()),
                entry => entry.map_err(broken)?,
            };
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(ImageError::TooLarge { what: "entries", limit: self.limits.max_entries });
            }
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let hostile = |why: &str| ImageError::Hostile { path: raw.clone(), why: why.to_string() };
            let Some(path) = clean(&raw).map_err(&hostile)? else { continue };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name == OPAQUE {
                self.whiteouts.opaque.push(path.parent().map(Path::to_path_buf).unwrap_or_default());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT) {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(hostile("a whiteout of no file of the layers below"));
                }
                self.whiteouts.removed.push(path.with_file_name(hidden));
                continue;
            }
            let target = self.dest.join(&path);
            real_parents(self.dest, &path).map_err(|why| hostile(&why))?;
            let header = entry.header();
            // Set-id bits give nothing in a sandbox without privileges; they are cleared,
            // not refused, since ordinary distribution images carry them (su, passwd).
            let mode = header.mode().map_err(broken)? & 0o777;
            let kind = header.entry_type();
            match kind {
                tar::EntryType::Directory => {
                    if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                        remove_any(&target)?;
                        fs::create_dir(&target).map_err(io_at(&target))?;
                    }
                    // The owner must be able to add what the layer puts inside.
                    set_mode(&target, mode | 0o700)?;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.size();
                    self.bytes = self.bytes.saturating_add(size);
                    if self.bytes > self.limits.max_bytes {
                        return Err(ImageError::TooLarge { what: "bytes", limit: self.limits.max_bytes });
                    }
                    remove_any(&target)?;
                    self.budget.allow(size);
                    let mut file = File::create_new(&target).map_err(io_at(&target))?;
                    // What the header claims is all that is copied.
                    io::copy(&mut (&mut entry).take(size), &mut file).map_err(io_at(&target))?;
                    set_mode(&target, mode | 0o400)?;
                }
                tar::EntryType::Symlink => {
                    let link = entry.link_name_bytes().ok_or_else(|| hostile("a link without a target"))?;
                    let link = PathBuf::from(String::from_utf8_lossy(&link).into_owned());
                    if leaves_root(&path, &link) {
                        return Err(hostile(&format!("a link to {} leaves the image", link.display())));
                    }
                    remove_any(&target)?;
                    symlink(&link, &target).map_err(io_at(&target))?;
                }
                tar::EntryType::Link => {
                    let link = entry.link_name_bytes().ok_or_else(|| hostile("a link without a target"))?;
                    let link = String::from_utf8_lossy(&link).into_owned();
                    let source = clean(&link).ok().flatten().ok_or_else(|| hostile("a hard link out of the layer"))?;
                    real_parents(self.dest, &source).map_err(|why| hostile(&why))?;
                    let source = self.dest.join(source);
                    if !fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
                        return Err(hostile("a hard link to no file of the layer"));
                    }
                    remove_any(&target)?;
                    fs::hard_link(&source, &target).map_err(io_at(&target))?;
                }
                tar::EntryType::Char | tar::EntryType::Block => return Err(hostile("a device node")),
                tar::EntryType::Fifo => return Err(hostile("a named pipe")),
                // Extended headers are read by the tar reader itself.
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
                other => return Err(hostile(&format!("an entry of type {other:?}"))),
            }
        }
        Ok((self.whiteouts, self.bytes))
    }
}

/// The entry's path inside the layer: `None` for the root itself; an error for an
/// absolute path or one that climbs with `..`.
pub(crate) fn clean(raw: &str) -> Result<Option<PathBuf>, &'static str> {
    if raw.starts_with('/') {
        return Err("an absolute path");
    }
    let mut path = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("a path that climbs with .."),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path"),
        }
    }
    Ok((!path.as_os_str().is_empty()).then_some(path))
}

/// Whether a symbolic link at `path` (inside the image) to `target` points outside the
/// image. An absolute target is inside: in the sandbox the image is the root.
fn leaves_root(path: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = path.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Makes sure every directory above `path` in `root` is a real directory, creating those
/// missing: an entry is never written through a link.
pub(crate) fn real_parents(root: &Path, path: &Path) -> Result<(), String> {
    let mut dir = root.to_path_buf();
    let Some(parent) = path.parent() else { return Ok(()) };
    for part in parent.components() {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(format!("{} is a link or a file, not a directory", dir.display())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            Err(error) => return Err(format!("{}: {error}", dir.display())),
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (a file, a link, a whole directory), not following links.
pub(crate) fn remove_any(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map_err(io_at(path)),
        Ok(_) => fs::remove_file(path).map_err(io_at(path)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ImageError::Io { path: path.to_path_buf(), source }),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ImageError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_layer() {
        assert_eq!(clean("./usr/bin/python3"), Ok(Some(PathBuf::from("usr/bin/python3"))));
        assert_eq!(clean("./"), Ok(None));
        assert!(clean("/etc/passwd").is_err());
        assert!(clean("usr/../../etc").is_err());
        assert!(clean("..").is_err());
    }

    #[test]
    fn a_link_leaves_the_image_only_by_climbing_above_its_root() {
        let at = |path: &str, target: &str| leaves_root(Path::new(path), Path::new(target));
        assert!(!at("usr/bin/python", "python3.11"));
        assert!(!at("usr/lib/x", "../../etc/x"), "to the root, not above it");
        assert!(at("usr/lib/x", "../../../etc"));
        assert!(at("x", "../x"));
        assert!(!at("x", "/etc/passwd"), "an absolute target is the image's own");
    }
}
