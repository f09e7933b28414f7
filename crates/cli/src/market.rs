//! `ogpu auction` and `ogpu pool`: the two markets as a client or provider browses them,
//! and joining or leaving a pool.

use anyhow::Result;
use clap::Subcommand;
use ogpu_chain::state::Phase;
use ogpu_client::types::{PoolView, TaskView};
use ogpu_client::{TaskFilter, Wallet};
use ogpu_core::spec::Market;
use ogpu_core::tx::TxBody;
use ogpu_core::{Amount, PoolId};

use crate::client::{ClientArgs, Format};

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
            let wallet = Wallet::new(args.signing_key()?, args.client()?)?;
            let hash = wallet.settle(TxBody::JoinPool { pool: parse_id(&id)?, stake }, "the join")?;
            if json { println!("{}", serde_json::json!({ "tx": hash })) } else { println!("joined pool {id}") }
        }
        PoolCommand::Leave { id } => {
            let wallet = Wallet::new(args.signing_key()?, args.client()?)?;
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

fn parse_id(text: &str) -> Result<PoolId> {
    Ok(PoolId(crate::client::parse_hash(text, "a pool id")?))
}
