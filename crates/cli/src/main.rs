//! `ogpu`: the OpenGPU Network command line. A thin layer of argument handling and
//! printing over the library crates.

mod bench;
mod bench_blobs;
mod bench_container;
mod bench_market;
mod bench_runtime;
mod blob;
mod client;
mod dashboard;
mod devnet;
mod exit;
mod gov;
mod image;
mod key;
mod market;
mod node;
mod progress;
mod provider;
mod spec;
mod stake;
mod task;
mod wallet;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Training allocates and frees tensors of hundreds of KB every step; glibc's malloc maps
/// and unmaps each of them (a CNN trained 1.7 times faster once they were kept), mimalloc
/// reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ogpu",
    version,
    about = "The OpenGPU Network: a decentralized market for GPU compute",
    after_help = exit::CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local network on loopback: validators as separate processes and the API.
    Devnet {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Where the first validator serves the API; given again, where the second does,
        /// and so on.
        #[arg(long = "api", default_value = "127.0.0.1:8080")]
        apis: Vec<std::net::SocketAddr>,
        #[arg(long, default_value = "devnet-data")]
        data: std::path::PathBuf,
        /// Also start this many provider agents, each with its own funded key.
        #[arg(long, default_value_t = 3)]
        providers: usize,
        /// The least time between blocks, in milliseconds: it sets how long the chain's
        /// block-count windows (bids, starts, reveals) last.
        #[arg(long, default_value_t = devnet::BLOCK_MS)]
        block_ms: u64,
        /// Where the client dashboard (for the demo client's key) listens; port 0 for any
        /// free one.
        #[arg(long, default_value = "127.0.0.1:8090")]
        dashboard: std::net::SocketAddr,
        /// Fund this many load-test accounts at genesis (used by `ogpu bench devnet`).
        #[arg(long, default_value_t = 0, hide = true)]
        fund: usize,
    },
    /// Run a validator node.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Create and inspect encrypted key files.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Check task specs before submitting them.
    #[command(subcommand)]
    Spec(spec::SpecCommand),
    /// Measure the system's throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Write a container task's image archive from a directory.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// What a GPU provider runs.
    Provider {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: provider::ProviderCommand,
    },
    /// Keys, balances split by where the money sits, transfers and history.
    Wallet {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: wallet::WalletCommand,
    },
    /// Stake as a validator or provider, unbond, withdraw.
    Stake {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: stake::StakeCommand,
    },
    /// Browse open auctions.
    Auction {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: market::AuctionCommand,
    },
    /// Browse pools, join and leave them.
    Pool {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: market::PoolCommand,
    },
    /// The chain's parameters, and proposals to change them.
    Gov {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: gov::GovCommand,
    },
    /// Put files into the blob store and get them back, by hash.
    Blob {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: blob::BlobCommand,
    },
    /// Serve the customer dashboard for your key on 127.0.0.1 and print its link.
    Dashboard {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(flatten)]
        args: dashboard::DashboardArgs,
    },
    /// Submit tasks and follow them, or run them locally first.
    Task {
        #[command(flatten)]
        client: client::ClientArgs,
        #[command(subcommand)]
        command: task::TaskCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            exit::code(&error)
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Devnet { validators, apis, data, providers, block_ms, dashboard, fund } => {
            devnet::run(devnet::DevnetArgs { validators, apis, data, providers, block_ms, fund, dashboard })
        }
        Command::Node(command) => node::run(command),
        Command::Key(command) => key::run(command),
        Command::Spec(command) => spec::run(command),
        Command::Bench(command) => bench::run(command),
        Command::Image(command) => image::run(command),
        Command::Wallet { client, command } => wallet::run(client, command),
        Command::Stake { client, command } => stake::run(client, command),
        Command::Auction { client, command } => market::auctions(client, command),
        Command::Pool { client, command } => market::pools(client, command),
        Command::Blob { client, command } => blob::run(client, command),
        Command::Gov { client, command } => gov::run(client, command),
        Command::Task { client, command } => task::run(client, command),
        Command::Dashboard { client, args } => dashboard::run(client, args),
        Command::Provider { client, command } => provider::run(client, command),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The ids of arguments a subcommand defines that a global argument above it already
    /// uses, as `command path: id`.
    fn shadowed(command: &clap::Command, path: &str, globals: &[String], found: &mut Vec<String>) {
        let mut globals = globals.to_vec();
        for arg in command.get_arguments() {
            let id = arg.get_id().to_string();
            if arg.is_global_set() {
                globals.push(id);
            } else if globals.contains(&id) {
                found.push(format!("{path}: {id}"));
            }
        }
        for sub in command.get_subcommands() {
            shadowed(sub, &format!("{path} {}", sub.get_name()), &globals, found);
        }
    }

    /// `gov propose KEY VALUE` named its first argument `key`, which `--key` (global to
    /// every client command) already is: clap then panicked on every `gov propose`. No
    /// subcommand may reuse a global argument's name.
    #[test]
    fn no_subcommand_argument_shadows_a_global_one() {
        let command = Cli::command();
        command.clone().debug_assert();
        let mut found = Vec::new();
        shadowed(&command, "ogpu", &[], &mut found);
        assert_eq!(found, Vec::<String>::new());
    }
}
