//! The cache of unpacked layers and stacked root filesystems, on disk and bounded.
//!
//! `layers/<hex>/tree` holds a layer's files and `layers/<hex>/whiteouts.json` what it
//! removes, once the layer unpacked whole and its bytes had the digest the image names: a
//! layer is unpacked into `scratch/` first and only then moved into place, whole.
//! `rootfs/<hex>` is the stack of an image's layers in order, keyed by the digest of their
//! digests; its files are hard links into the layers' trees, so a root filesystem must be
//! mounted read-only. A root filesystem in use is held by a [`Lease`]. Once the cache
//! holds more than its limit, root filesystems not in use go (they cost little to stack
//! again), then the layers used longest ago. Stacking and eviction take one lock, so that
//! within a process nothing is evicted from under a stack being built.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::digest::{Digest, Hashing};
use crate::image::{Image, Layer};
use crate::layer::{self, Limits, Whiteouts, real_parents, remove_any};
use crate::{ImageError, io_at};

/// A cache directory of layers and root filesystems.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    limits: Limits,
    /// The most the cache keeps, in bytes of file contents.
    max_bytes: u64,
    /// Held while stacking or evicting.
    lock: Mutex<()>,
    /// Root filesystems in use, with how many runs use each.
    leased: Mutex<BTreeMap<PathBuf, usize>>,
}

/// A root filesystem in use: it is not evicted while this lives.
#[derive(Debug)]
pub struct Lease<'a> {
    cache: &'a Cache,
    path: PathBuf,
}

impl Deref for Lease<'_> {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut leased = self.cache.leased.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = leased.get_mut(&self.path) {
            *count -= 1;
            if *count == 0 {
                leased.remove(&self.path);
            }
        }
    }
}

/// Names scratch directories apart within this process.
static SCRATCH: AtomicU64 = AtomicU64::new(0);

const TREE: &str = "tree";
const WHITEOUTS: &str = "whiteouts.json";
/// The bytes of a layer's files, counted as it was unpacked: eviction adds these up
/// instead of walking every tree on every run.
const BYTES: &str = "bytes";

impl Cache {
    /// The cache at `dir` (created if need be), unpacking each layer to at most `limits`
    /// and keeping at most `max_bytes`.
    pub fn open(dir: &Path, limits: Limits, max_bytes: u64) -> Result<Cache, ImageError> {
        for sub in ["layers", "rootfs", "scratch"] {
            fs::create_dir_all(dir.join(sub)).map_err(io_at(dir))?;
        }
        // Scratch left by a process that was killed is never finished; a live one's is
        // work under way (the cache may be shared between processes).
        for entry in fs::read_dir(dir.join("scratch")).map_err(io_at(dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name.split('-').next().unwrap_or_default();
            if owner.is_empty() || !Path::new("/proc").join(owner).exists() {
                remove_any(&entry.path())?;
            }
        }
        let (lock, leased) = (Mutex::new(()), Mutex::new(BTreeMap::new()));
        Ok(Cache { dir: dir.to_path_buf(), limits, max_bytes, lock, leased })
    }

    /// The root filesystem of `image`, held until the lease is dropped: each layer
    /// unpacked (once, kept by digest), the layers stacked bottom first with their
    /// whiteouts applied (once, kept by the layers' digests). Marks what it uses as used
    /// now.
    pub fn rootfs(&self, image: &Image) -> Result<Lease<'_>, ImageError> {
        let _stacking = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let chain: Vec<u8> = image.layers.iter().flat_map(|layer| layer.digest.0).collect();
        let rootfs = self.dir.join("rootfs").join(Digest::of(&chain).hex());
        let layers = image.layers.iter().map(|layer| self.layer(image, layer)).collect::<Result<Vec<_>, _>>()?;
        if !rootfs.is_dir() {
            let scratch = self.scratch();
            let stacked = layers
                .iter()
                .try_for_each(|(tree, whiteouts)| stack(tree, whiteouts, &scratch))
                .and_then(|()| mount_points(&scratch));
            self.keep(stacked, &scratch, &rootfs)?;
        } else {
            // A root filesystem stacked by an older agent may lack a mount point added since.
            mount_points(&rootfs)?;
        }
        touch(&rootfs)?;
        *self.leased.lock().unwrap_or_else(|p| p.into_inner()).entry(rootfs.clone()).or_default() += 1;
        Ok(Lease { cache: self, path: rootfs })
    }

    /// A layer's tree and whiteouts, unpacked now unless the cache has them.
    fn layer(&self, image: &Image, layer: &Layer) -> Result<(PathBuf, Whiteouts), ImageError> {
        let place = self.dir.join("layers").join(layer.digest.hex());
        let listed = place.join(WHITEOUTS);
        if listed.is_file() {
            // Cached for another image, perhaps another client's: this archive must hold
            // the layer's bytes itself, or naming a digest would be enough to read it.
            let mut hashing = Hashing::new(image.layer_bytes(layer)?);
            io::copy(&mut hashing, &mut io::sink()).map_err(io_at(&place))?;
            let got = hashing.digest();
            if got != layer.digest {
                let what = format!("layer {}", layer.digest);
                return Err(ImageError::DigestMismatch { what, want: layer.digest, got });
            }
        } else {
            // A layer in place without its whiteouts was left by an older layout of the
            // cache (each is moved in whole with them): it is unpacked again.
            remove_any(&place)?;
            let scratch = self.scratch();
            let tree = scratch.join(TREE);
            fs::create_dir_all(&tree).map_err(io_at(&scratch))?;
            let unpacked = layer::unpack(image.layer_bytes(layer)?, &tree, &self.limits).and_then(|unpacked| {
                if unpacked.digest != layer.digest {
                    let what = format!("layer {}", layer.digest);
                    return Err(ImageError::DigestMismatch { what, want: layer.digest, got: unpacked.digest });
                }
                // Written in scratch, so that a layer in place always has its whiteouts.
                let json = serde_json::to_vec(&unpacked.whiteouts).expect("whiteouts serialize");
                fs::write(scratch.join(BYTES), unpacked.bytes.to_string()).map_err(io_at(&scratch))?;
                fs::write(scratch.join(WHITEOUTS), json).map_err(io_at(&scratch))
            });
            self.keep(unpacked, &scratch, &place)?;
        }
        touch(&place)?;
        let whiteouts = serde_json::from_slice(&fs::read(&listed).map_err(io_at(&listed))?)
            .map_err(|e| ImageError::Malformed { what: listed.display().to_string(), why: e.to_string() })?;
        Ok((place.join(TREE), whiteouts))
    }

    fn scratch(&self) -> PathBuf {
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        self.dir.join("scratch").join(format!("{}-{n}", std::process::id()))
    }

    /// Moves `scratch` to `place` if `outcome` is a success; removes it either way.
    fn keep(&self, outcome: Result<(), ImageError>, scratch: &Path, place: &Path) -> Result<(), ImageError> {
        let kept = outcome.and_then(|()| match fs::rename(scratch, place) {
            Ok(()) => Ok(()),
            // Another run put the same thing there first.
            Err(_) if place.is_dir() => Ok(()),
            Err(source) => Err(ImageError::Io { path: place.to_path_buf(), source }),
        });
        let _ = remove_any(scratch);
        kept
    }

    /// Once the cache holds more than its limit: removes every root filesystem not in
    /// use, then the layers used longest ago until it is within the limit (a layer under
    /// a root filesystem in use may go too: its files live on in that root filesystem's
    /// hard links). Returns the bytes of the layers removed.
    pub fn evict(&self) -> Result<u64, ImageError> {
        let _evicting = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let layers_dir = self.dir.join("layers");
        let mut layers = Vec::new();
        for entry in fs::read_dir(&layers_dir).map_err(io_at(&layers_dir))?.flatten() {
            let path = entry.path();
            let used = fs::symlink_metadata(&path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            layers.push((used, layer_size(&path), path));
        }
        let mut held: u64 = layers.iter().map(|(_, bytes, _)| bytes).sum();
        if held <= self.max_bytes {
            return Ok(0);
        }
        let leased = self.leased.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let rootfs_dir = self.dir.join("rootfs");
        for entry in fs::read_dir(&rootfs_dir).map_err(io_at(&rootfs_dir))?.flatten() {
            if !leased.contains_key(&entry.path()) {
                remove_any(&entry.path())?;
            }
        }
        layers.sort();
        let mut freed = 0;
        for (_, bytes, path) in layers {
            if held <= self.max_bytes {
                break;
            }
            remove_any(&path)?;
            held -= bytes;
            freed += bytes;
        }
        Ok(freed)
    }
}

/// Marks `path` as used now, for eviction.
fn touch(path: &Path) -> Result<(), ImageError> {
    let dir = fs::File::open(path).map_err(io_at(path))?;
    dir.set_modified(SystemTime::now()).map_err(io_at(path))
}

/// The bytes a cached layer holds: as counted when it was unpacked, or counted now.
fn layer_size(place: &Path) -> u64 {
    let counted = fs::read_to_string(place.join(BYTES)).ok().and_then(|text| text.parse().ok());
    counted.unwrap_or_else(|| size_of(place))
}

/// The bytes of the files under `path`, not following links.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path).map_or(0, |entries| entries.flatten().map(|e| size_of(&e.path())).sum())
}

/// Where the sandbox mounts its own file systems (see `sandbox`), made real directories:
/// the root filesystem is mounted read-only, so they cannot be made then.
const MOUNT_POINTS: [&str; 6] = ["proc", "dev", "tmp", "input", "output", "ogpu"];

fn mount_points(rootfs: &Path) -> Result<(), ImageError> {
    if !rootfs.exists() {
        fs::create_dir(rootfs).map_err(io_at(rootfs))?;
    }
    for name in MOUNT_POINTS {
        let point = rootfs.join(name);
        if !fs::symlink_metadata(&point).is_ok_and(|m| m.is_dir()) {
            remove_any(&point)?;
            fs::create_dir(&point).map_err(io_at(&point))?;
        }
    }
    Ok(())
}

/// Puts the layer `tree` (with its `whiteouts`) on top of `rootfs`: what it removes goes,
/// then each of its entries replaces what is there.
fn stack(tree: &Path, whiteouts: &Whiteouts, rootfs: &Path) -> Result<(), ImageError> {
    if !rootfs.exists() {
        fs::create_dir(rootfs).map_err(io_at(rootfs))?;
    }
    let hostile = |path: &Path, why: String| ImageError::Hostile { path: path.display().to_string(), why };
    for dir in &whiteouts.opaque {
        real_parents(rootfs, &dir.join("x")).map_err(|why| hostile(dir, why))?;
        let below = rootfs.join(dir);
        if fs::symlink_metadata(&below).is_ok_and(|m| m.is_dir()) {
            for entry in fs::read_dir(&below).map_err(io_at(&below))?.flatten() {
                remove_any(&entry.path())?;
            }
        }
    }
    for removed in &whiteouts.removed {
        // Read back from the cache's own file: checked again, as any path from a layer.
        let clean = layer::clean(&removed.to_string_lossy()).ok().flatten();
        if clean.as_ref() != Some(removed) {
            return Err(hostile(removed, "a whiteout outside the image".into()));
        }
        real_parents(rootfs, removed).map_err(|why| hostile(removed, why))?;
        remove_any(&rootfs.join(removed))?;
    }
    copy_tree(tree, rootfs, Path::new(""))
}

/// Copies `tree/relative` onto `rootfs/relative`: directories made real (replacing a link
/// or file below), files hard-linked, links recreated.
fn copy_tree(tree: &Path, rootfs: &Path, relative: &Path) -> Result<(), ImageError> {
    let from = tree.join(relative);
    // Read whole before going down, so that no directory stays open per level.
    let entries: Vec<_> = fs::read_dir(&from).map_err(io_at(&from))?.collect::<Result<_, _>>().map_err(io_at(&from))?;
    for entry in entries {
        let path = relative.join(entry.file_name());
        let (source, target) = (tree.join(&path), rootfs.join(&path));
        let kind = entry.file_type().map_err(io_at(&source))?;
        if kind.is_dir() {
            if !fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                remove_any(&target)?;
                fs::create_dir(&target).map_err(io_at(&target))?;
            }
            let mode = fs::metadata(&source).map_err(io_at(&source))?.permissions();
            fs::set_permissions(&target, mode).map_err(io_at(&target))?;
            copy_tree(tree, rootfs, &path)?;
        } else if kind.is_symlink() {
            remove_any(&target)?;
            let link = fs::read_link(&source).map_err(io_at(&source))?;
            std::os::unix::fs::symlink(link, &target).map_err(io_at(&target))?;
        } else {
            remove_any(&target)?;
            // Never a copy instead: a file linked a million times would be a million copies.
            fs::hard_link(&source, &target).map_err(io_at(&target))?;
        }
    }
    Ok(())
}
