//! `ogpu spec check`: reads a task spec (TOML or JSON), hashes the files it names, and
//! shows the spec the chain would take and what submitting it would reserve under the
//! default chain parameters.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use ogpu_chain::{Params, reservation};
use ogpu_client::spec::ResolvedSpec;
use ogpu_core::spec::Market;

use crate::client::Format;

#[derive(Subcommand)]
pub enum SpecCommand {
    /// Validate FILE, resolve the files it names to hashes, and print what it would reserve.
    Check {
        file: PathBuf,
        /// Print a table for people or one JSON document for programs.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        format: Format,
    },
}

/// Reads a task spec (JSON when the file ends in `.json`, TOML otherwise) and hashes the
/// files it names.
pub fn load(file: &Path) -> Result<ResolvedSpec> {
    Ok(ogpu_client::spec::resolve(file)?)
}

pub fn run(command: SpecCommand) -> Result<()> {
    let SpecCommand::Check { file, format } = command;
    let json = format == Format::Json;
    let ResolvedSpec { spec, files, private } = load(&file)?;
    let Market::Auction { max_price, .. } = spec.market else {
        if json {
            println!("{}", serde_json::json!({ "spec": spec, "files": files, "private": private }));
        } else {
            println!("{}: valid pool job; it reserves the pool's price when submitted", spec.name);
        }
        return Ok(());
    };
    let reserved = reservation(&Params::default(), &spec, max_price, false).context("the reservation overflows")?;
    let total = reserved.total().context("the reservation overflows")?;
    if json {
        let out = serde_json::json!({
            "name": spec.name,
            "spec": spec,
            "files": files,
            "private": private,
            "escrow": reserved.escrow.to_string(),
            "trust_lock": reserved.client_lock.to_string(),
            "total": total.to_string(),
        });
        println!("{out}");
    } else {
        println!("{}: valid", spec.name);
        if private {
            println!("private     its files are sealed at submit, for the task's parties alone");
        }
        println!("program     {}", spec.workload.program);
        for (name, hash) in &spec.workload.inputs {
            println!("input       {name} = {hash}");
        }
        for (hash, path) in &files {
            println!("file        {} is {hash}", path.display());
        }
        println!("reserves {total} oGPU: {} in escrow and a {} trust lock", reserved.escrow, reserved.client_lock);
    }
    Ok(())
}
