//! `ogpu`: the OpenGPU Network command line. A thin layer of argument handling and
//! printing over the library crates.

mod bench;
mod key;
mod spec;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ogpu", version, about = "The OpenGPU Network: a decentralized market for GPU compute")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local network on loopback (not built yet: see the README's status).
    Devnet,
    /// Create and inspect encrypted key files.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Check task specs before submitting them.
    #[command(subcommand)]
    Spec(spec::SpecCommand),
    /// Measure the system's throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Devnet => {
            eprintln!("ogpu devnet is not built yet: the node, consensus and API land in later milestones.");
            eprintln!("What works today: `ogpu key`, `ogpu spec check`, `ogpu bench chain`.");
            std::process::exit(2);
        }
        Command::Key(command) => key::run(command),
        Command::Spec(command) => spec::run(command),
        Command::Bench(command) => bench::run(command),
    }
}
