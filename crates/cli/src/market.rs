//! `ogpu auction` and `ogpu pool`: the two markets as a client or provider browses them;
//! creating, joining and leaving a pool, and submitting a job to one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ogpu_chain::state::Phase;
use ogpu_client::spec::{HASH_PREFIX, hash_file};
use ogpu_client::types::{PoolView, TaskView};
use ogpu_client::{Client, TaskFilter, Wallet};
use ogpu_core::spec::{Market, PoolSpec, Ratio};
use ogpu_core::tx::TxBody;
use ogpu_core::{Amount, BlobHash, PoolId};

use crate::client::{ClientArgs, Format};
use crate::progress::Bars;

#[derive(Subcommand)]
pub enum AuctionCommand {
    /// Auctions taking sealed bids now: requirements, price cap and bids so far.
    List,
}

#[derive(Subcommand)]
pub enum PoolCommand {
    /// Every pool: its kind, price per job, minimum stake and subscribers.
    List,
    /// One pool, with each subscriber's stake.
    Show { id: String },
    /// Subscribe the signing key (a registered provider) with STAKE oGPU of pool stake.
    Join { id: String, stake: Amount },
    /// Unsubscribe the signing key; its pool stake comes back.
    Leave { id: String },
    /// Create a pool serving one model: providers subscribe with stake and race for its
    /// jobs at a fixed price.
    Create {
        /// The pool's name.
        #[arg(long)]
        name: String,
        /// The runtime its jobs run on (onnx, wasm, train).
        #[arg(long, value_parser = ["onnx", "wasm", "train"])]
        kind: String,
        /// The model every job runs: a file (uploaded unless the store has it) or
        /// blake3:<hex> for a stored blob.
        #[arg(long)]
        model: String,
        /// What each job pays its provider, in oGPU.
        #[arg(long)]
        price: Amount,
        /// The pool stake a subscriber must lock, in oGPU.
        #[arg(long)]
        min_stake: Amount,
        /// The share of jobs a verifier re-executes, from 0 to 1.
        #[arg(long, default_value = "0.1")]
        verification_rate: f64,
    },
    /// Submit a job to a pool: the spec in FILE with its market set to this pool; then
    /// follow it as `task submit` does.
    Submit {
        id: String,
        file: PathBuf,
        /// Print the task id once it is on chain, and do not wait.
        #[arg(long)]
        no_wait: bool,
    },
}

/// The most records a list asks the node for.
const LIST_LIMIT: usize = 1_000;

pub fn auctions(args: ClientArgs, command: AuctionCommand) -> Result<()> {
    let AuctionCommand::List = command;
    let filter = TaskFilter { phase: Some("bidding".into()), limit: Some(LIST_LIMIT), ..TaskFilter::default() };
    let open = args.client()?.tasks(&filter)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&open)?);
        return Ok(());
    }
    for TaskView { id, task } in &open.tasks {
        let Market::Auction { max_price, .. } = task.spec.market else { continue };
        let (bids, commit_end) = match &task.phase {
            Phase::Bidding { bids, commit_end, .. } => (bids.len(), *commit_end),
            _ => continue,
        };
        let needs = &task.spec.requirements;
        let kind = format!("{:?}", task.spec.workload.kind).to_lowercase();
        println!(
            "{id} {kind:<5} up to {max_price} oGPU, {} GPU(s) {} MiB VRAM, {bids} bid(s), bids until #{commit_end}",
            needs.gpus, needs.min_vram_mb
        );
    }
    Ok(())
}

pub fn pools(args: ClientArgs, command: PoolCommand) -> Result<()> {
    let json = args.format == Format::Json;
    match command {
        PoolCommand::List => {
            let pools = args.client()?.pools(Some(LIST_LIMIT))?;
            if json {
                println!("{}", serde_json::to_string(&pools)?);
            } else {
                pools.pools.iter().for_each(print_pool);
            }
        }
        PoolCommand::Show { id } => {
            let view = args.client()?.pool(&parse_id(&id)?)?;
            if json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                print_pool(&view);
                for (subscriber, stake) in &view.pool.subscribers {
                    println!("  {subscriber} {stake} oGPU");
                }
            }
        }
        PoolCommand::Join { id, stake } => {
            let wallet = args.wallet()?;
            let hash = wallet.settle(TxBody::JoinPool { pool: parse_id(&id)?, stake }, "the join")?;
            if json { println!("{}", serde_json::json!({ "tx": hash })) } else { println!("joined pool {id}") }
        }
        PoolCommand::Create { name, kind, model, price, min_stake, verification_rate } => {
            let client = args.client()?;
            let spec = PoolSpec {
                name,
                kind: serde_json::from_value(serde_json::Value::String(kind))?,
                model: stored_model(&client, &model)?,
                price_per_job: price,
                verification_rate: ratio(verification_rate)?,
                min_stake,
            };
            spec.validate()?;
            let wallet = Wallet::new(args.signing_key()?, client)?;
            let id = wallet.settle(TxBody::CreatePool { spec }, "the pool")?;
            if json { println!("{}", serde_json::json!({ "pool": id })) } else { println!("pool {id} created") }
        }
        PoolCommand::Submit { id, file, no_wait } => {
            let mut resolved = crate::spec::load(&file)?;
            resolved.spec.market = Market::Pool { pool: parse_id(&id)? };
            return crate::task::submit(&args, resolved, no_wait);
        }
        PoolCommand::Leave { id } => {
            let wallet = args.wallet()?;
            let hash = wallet.settle(TxBody::LeavePool { pool: parse_id(&id)? }, "the leave")?;
            if json { println!("{}", serde_json::json!({ "tx": hash })) } else { println!("left pool {id}") }
        }
    }
    Ok(())
}

fn print_pool(PoolView { id, pool }: &PoolView) {
    let spec = &pool.spec;
    let kind = format!("{:?}", spec.kind).to_lowercase();
    println!(
        "{id} {kind:<5} {} oGPU a job, min stake {} oGPU, {} subscriber(s): {}",
        spec.price_per_job,
        spec.min_stake,
        pool.subscribers.len(),
        crate::task::printable(&spec.name)
    );
}

/// The hash of the model `text` names: a stored blob (`blake3:<hex>`, which must be in the
/// store) or a file, uploaded unless the store already has it.
fn stored_model(client: &Client, text: &str) -> Result<BlobHash> {
    if text.starts_with(HASH_PREFIX) {
        let hash = crate::blob::parse_hash(text)?;
        if !client.has_blob(&hash)? {
            bail!("the model {text} is not in the node's store; upload it with `ogpu blob put`");
        }
        return Ok(hash);
    }
    let path = Path::new(text);
    let hash = hash_file(path).with_context(|| format!("reading the model {}", path.display()))?;
    if !client.has_blob(&hash)? {
        let mut bars = Bars::new();
        ogpu_client::transfer::upload(client, path, |progress| bars.show(progress))?;
    }
    Ok(hash)
}

fn ratio(fraction: f64) -> Result<Ratio> {
    serde_json::from_value(serde_json::json!(fraction))
        .with_context(|| format!("--verification-rate {fraction} must be from 0 to 1"))
}

fn parse_id(text: &str) -> Result<PoolId> {
    Ok(PoolId(crate::client::parse_hash(text, "a pool id")?))
}
