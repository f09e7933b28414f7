//! The manifest of a task's result: the files a run delivered, one `HASH SIZE PATH` line
//! each, sorted by path, under a header line. The result hash a provider commits to is the
//! manifest's own blob address, so whoever holds a result hash can fetch the manifest by
//! it, then every file it lists, checking each on arrival; and a node keeps the files a
//! result on chain lists.

use crate::hash::Hash;
use crate::ids::BlobHash;

/// The manifest's first line; a new layout gets a new one.
const HEADER: &str = "ogpu-output v1";

/// One delivered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative to the output directory, with `/` between components.
    pub path: String,
    pub size: u64,
    /// blake3 of the contents: the file's blob address.
    pub hash: BlobHash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an output manifest: {0}")]
pub struct ManifestError(String);

/// The manifest of `files` (sorted by path).
pub fn write(files: &[OutputFile]) -> Vec<u8> {
    let mut text = format!("{HEADER}\n");
    for file in files {
        text.push_str(&format!("{} {} {}\n", file.hash, file.size, file.path));
    }
    text.into_bytes()
}

/// The manifest's address: the result hash of the files it lists.
pub fn hash(manifest: &[u8]) -> Hash {
    Hash::of_bytes(manifest)
}

/// Reads a manifest back, refusing anything [`write`] would not have written.
pub fn parse(bytes: &[u8]) -> Result<Vec<OutputFile>, ManifestError> {
    let bad = |why: &str| ManifestError(why.to_string());
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.strip_suffix('\n').ok_or_else(|| bad("no final newline"))?.split('\n');
    if lines.next() != Some(HEADER) {
        return Err(bad("wrong header"));
    }
    let files = lines
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let (Some(hash), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("a line lacks a hash, size or path"));
            };
            let hash = hash.parse().map_err(|_| bad("a hash is not hex"))?;
            let size = size.parse().map_err(|_| bad("a size is not a number"))?;
            check_path(path).map_err(|why| bad(&why))?;
            Ok(OutputFile { path: path.to_string(), size, hash: BlobHash(hash) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if write(&files) != bytes {
        return Err(bad("not in canonical form"));
    }
    Ok(files)
}

/// A delivered path must stay inside the output directory wherever it is written out,
/// and fit on one manifest line.
pub fn check_path(path: &str) -> Result<(), String> {
    let inside = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if !inside || path.chars().any(char::is_control) {
        return Err(format!("{path:?} is not a plain relative path"));
    }
    Ok(())
}
