//! `ogpu image build`: a container task's image archive written from a directory tree
//! (a root filesystem `mmdebstrap` made, or a static binary and its files), without a
//! container engine. See docs/containers.md.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use ogpu_container::ImageConfig;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Write the tree under DIR as an OCI image archive with what it runs.
    Build {
        /// The image's root filesystem.
        dir: PathBuf,
        /// The archive to write.
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// The command's first words, given once each: `--entrypoint python3`.
        #[arg(long)]
        entrypoint: Vec<String>,
        /// Its default arguments, given once each, replaced by a task's `args`.
        #[arg(long)]
        cmd: Vec<String>,
        /// `NAME=value`, given once each.
        #[arg(long)]
        env: Vec<String>,
        /// Where the command starts.
        #[arg(long)]
        workdir: Option<String>,
    },
}

pub fn run(command: ImageCommand) -> Result<()> {
    let ImageCommand::Build { dir, out, entrypoint, cmd, env, workdir } = command;
    if let Some(bad) = env.iter().find(|pair| pair.split_once('=').is_none_or(|(name, _)| name.is_empty())) {
        anyhow::bail!("--env {bad:?}: write NAME=value");
    }
    let config = ImageConfig { entrypoint, cmd, env, working_dir: workdir };
    ogpu_container::build::write_archive(&dir, &config, &out)
        .with_context(|| format!("writing {} from {}", out.display(), dir.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or_default();
    println!("{}: {:.1} MiB", out.display(), size as f64 / (1 << 20) as f64);
    Ok(())
}
