//! `ogpu blob`: files in the network's blob store, where a file's address is the blake3
//! hash of its bytes. `hash` works offline and prints the address `put` would give.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ogpu_client::spec::{HASH_PREFIX, hash_file};
use ogpu_core::BlobHash;

use crate::client::{ClientArgs, Format};
use crate::progress::Bars;

#[derive(Subcommand)]
pub enum BlobCommand {
    /// Upload FILE; print its hash (its address in the store) and size.
    Put { file: PathBuf },
    /// Download blob HASH (hex, or `blake3:` and hex) into FILE, checking its hash first.
    Get { hash: String, out: PathBuf },
    /// Print the hash FILE has in the store, without uploading it.
    Hash { file: PathBuf },
}

pub fn run(args: ClientArgs, command: BlobCommand) -> Result<()> {
    let (hash, size) = match command {
        BlobCommand::Put { file } => {
            open(&file)?;
            let mut bars = Bars::new();
            ogpu_client::transfer::upload(&args.client()?, &file, |progress| bars.show(progress))?
        }
        BlobCommand::Get { hash, out } => get(&args, &parse_hash(&hash)?, &out)?,
        BlobCommand::Hash { file } => {
            let size = open(&file)?.get_ref().metadata()?.len();
            (hash_file(&file).with_context(|| format!("reading {}", file.display()))?, size)
        }
    };
    match args.format {
        Format::Json => println!("{}", serde_json::json!({ "hash": hash, "size": size })),
        Format::Table => println!("{hash} {size} bytes"),
    }
    Ok(())
}

/// A regular file to read, or an error naming it.
fn open(file: &Path) -> Result<BufReader<File>> {
    let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    if !opened.metadata().with_context(|| format!("cannot read {}", file.display()))?.is_file() {
        bail!("{} is not a regular file", file.display());
    }
    Ok(BufReader::new(opened))
}

/// A blob hash written as hex, with or without `blake3:` before it.
pub fn parse_hash(text: &str) -> Result<BlobHash> {
    let hex = text.strip_prefix(HASH_PREFIX).unwrap_or(text);
    Ok(BlobHash(crate::client::parse_hash(hex, "a blob hash")?))
}

/// Downloads into a temporary file beside `out` and moves it there only once its bytes
/// hash to `hash`, so a failed or corrupt download leaves nothing at `out`.
fn get(args: &ClientArgs, hash: &BlobHash, out: &Path) -> Result<(BlobHash, u64)> {
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let partial = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut bars = Bars::new();
    let size = ogpu_client::transfer::download(&args.client()?, hash, partial.path(), |progress| bars.show(progress))?;
    partial.persist(out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok((*hash, size))
}
