//! `ogpu spec check`: validates a task spec (TOML or JSON) and shows what submitting it
//! would reserve under the default chain parameters.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use ogpu_chain::{Params, reservation};
use ogpu_core::spec::{Market, TaskSpec};

#[derive(Subcommand)]
pub enum SpecCommand {
    /// Validate FILE and print what it would reserve.
    Check {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Reads and validates a task spec: JSON when the file ends in `.json`, TOML otherwise.
pub fn load(file: &Path) -> Result<TaskSpec> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let is_json = file.extension().is_some_and(|e| e == "json");
    if is_json { TaskSpec::from_json(&text) } else { TaskSpec::from_toml(&text) }
        .with_context(|| format!("{} is not a valid task spec", file.display()))
}

pub fn run(command: SpecCommand) -> Result<()> {
    let SpecCommand::Check { file, json } = command;
    let spec = load(&file)?;
    let Market::Auction { max_price, .. } = spec.market else {
        println!("{}: valid pool job; it reserves the pool's price when submitted", spec.name);
        return Ok(());
    };
    let reserved = reservation(&Params::default(), &spec, max_price, false).context("the reservation overflows")?;
    let total = reserved.total().context("the reservation overflows")?;
    if json {
        let out = serde_json::json!({
            "name": spec.name,
            "escrow": reserved.escrow.to_string(),
            "trust_lock": reserved.client_lock.to_string(),
            "total": total.to_string(),
        });
        println!("{out}");
    } else {
        println!("{}: valid", spec.name);
        println!("reserves {total} oGPU: {} in escrow and a {} trust lock", reserved.escrow, reserved.client_lock);
    }
    Ok(())
}
