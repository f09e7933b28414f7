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

/// The index of a result sealed for a private task, itself a manifest (so nodes keep every
/// blob it lists) of sealed copies: first the manifest's, named `0`, then each file's in
/// the manifest's order, named `1`, `2`, ... It tells a stranger how many files there are
/// and their sealed sizes, nothing of their names or contents.
pub fn write_sealed_index(sealed: &[(BlobHash, u64)]) -> Vec<u8> {
    let entries: Vec<OutputFile> = sealed
        .iter()
        .enumerate()
        .map(|(place, (hash, size))| OutputFile { path: place.to_string(), size: *size, hash: *hash })
        .collect();
    write(&entries)
}

/// Reads a sealed index back: the sealed manifest, then the sealed files in the manifest's
/// order.
pub fn parse_sealed_index(bytes: &[u8]) -> Result<Vec<OutputFile>, ManifestError> {
    let entries = parse(bytes)?;
    let numbered = entries.iter().enumerate().all(|(place, entry)| entry.path == place.to_string());
    if entries.is_empty() || !numbered {
        return Err(ManifestError("a sealed index names its entries 0, 1, 2, ... from the manifest on".into()));
    }
    Ok(entries)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_index_reads_back_and_refuses_entries_out_of_place() {
        let sealed = [(BlobHash(Hash([1; 32])), 44), (BlobHash(Hash([2; 32])), 1_000)];
        let index = write_sealed_index(&sealed);
        let read: Vec<_> = parse_sealed_index(&index).unwrap().iter().map(|e| (e.hash, e.size)).collect();
        assert_eq!(read, sealed);
        assert_eq!(parse(&index).unwrap().len(), 2, "nodes read it as the manifest it is");

        let swapped = write(&[
            OutputFile { path: "1".into(), size: 1, hash: BlobHash(Hash([1; 32])) },
            OutputFile { path: "0".into(), size: 1, hash: BlobHash(Hash([2; 32])) },
        ]);
        assert!(parse_sealed_index(&swapped).is_err());
        assert!(parse_sealed_index(&write(&[])).is_err(), "an index lists at least the manifest");
    }
}
