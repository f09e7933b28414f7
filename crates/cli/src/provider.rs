//! `ogpu provider`: what a GPU provider runs. `init` writes a key and a config, `run`
//! starts the agent (register, stake, bid, race, run, verify) until Ctrl-C, `status` shows
//! what the chain knows of a provider, `bids` its bids and awards, `earnings` what it was
//! paid and slashed, and `detect` the device profile this machine would register.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::collections::BTreeMap;

use ogpu_chain::Event;
use ogpu_chain::receipt::PayReason;
use ogpu_chain::state::Phase;
use ogpu_client::ledger::{self, Earnings};
use ogpu_client::types::TaskView;
use ogpu_client::{EventRecord, TaskFilter};
use ogpu_core::keystore::{Kdf, Keystore};
use ogpu_core::spec::{DeviceKind, DeviceProfile};
use ogpu_core::{Address, Amount, SecretKey, TaskId};
use ogpu_dashboard::{Dashboard, ProviderSettings};
use ogpu_provider::{Agent, ProviderConfig};
use ogpu_runtime::{Libraries, Runtimes};
use serde_json::json;

use crate::client::{ClientArgs, Format, open_key};

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Write a new provider key and a config file into DIR.
    Init {
        dir: PathBuf,
        /// Cheap key derivation, for throwaway devnet keys only.
        #[arg(long)]
        devnet: bool,
    },
    /// Run the agent with a config file until Ctrl-C or SIGTERM.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// What the chain knows of a provider: devices, stake, reputation, recent events.
    Status {
        #[command(flatten)]
        who: Who,
    },
    /// The provider's sealed bids in open auctions, and the awards it won lately.
    Bids {
        #[command(flatten)]
        who: Who,
    },
    /// What the provider was paid lately, per task and by reason, and what it was slashed.
    Earnings {
        #[command(flatten)]
        who: Who,
    },
    /// Detect and measure this machine's devices.
    Detect {
        /// The region the profile names.
        #[arg(long, default_value = "local")]
        region: String,
    },
}

/// Which provider a command is about.
#[derive(clap::Args)]
pub struct Who {
    /// The provider's config file (its key names the provider).
    #[arg(long, conflicts_with = "address")]
    config: Option<PathBuf>,
    /// Or the provider's address (default: the signing key's).
    #[arg(long)]
    address: Option<Address>,
}

impl Who {
    fn address(self, client: &ClientArgs) -> Result<Address> {
        match (self.config, self.address) {
            (_, Some(address)) => Ok(address),
            (Some(config), None) => {
                let config = ProviderConfig::load(&config)?;
                Ok(Address::of(&open_key(&config.key)?.public()))
            }
            (None, None) => match &client.key {
                Some(key) => Ok(Address::of(&open_key(key)?.public())),
                None => bail!("name the provider: --config FILE, --address ADDRESS or --key FILE"),
            },
        }
    }
}

pub fn run(client: ClientArgs, command: ProviderCommand) -> Result<()> {
    match command {
        ProviderCommand::Init { dir, devnet } => init(&client, &dir, devnet),
        ProviderCommand::Run { config } => run_agent(&config),
        ProviderCommand::Status { who } => status(&client, &who.address(&client)?),
        ProviderCommand::Bids { who } => bids(&client, &who.address(&client)?),
        ProviderCommand::Earnings { who } => earnings(&client, &who.address(&client)?),
        ProviderCommand::Detect { region } => detect(&region, client.format),
    }
}

fn init(client: &ClientArgs, dir: &std::path::Path, devnet: bool) -> Result<()> {
    let (key_path, config_path) = (dir.join("provider.key"), dir.join("provider.toml"));
    if key_path.exists() || config_path.exists() {
        bail!("{} already holds a provider; refusing to overwrite it", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = SecretKey::generate(&mut rand_core::OsRng);
    let password = std::env::var("OGPU_PASSWORD").context("set OGPU_PASSWORD to the new key's password")?;
    let costs = if devnet { Kdf::DEVNET } else { Kdf::STANDARD };
    std::fs::write(&key_path, Keystore::seal(&key, &password, costs, &mut rand_core::OsRng)?.to_json())?;
    let config = ProviderConfig { api: client.api.clone(), ..ProviderConfig::default() };
    std::fs::write(&config_path, toml::to_string(&config)?)?;
    println!("provider {}", Address::of(&key.public()));
    println!("config   {}", config_path.display());
    println!(
        "Fund the address (it stakes {} oGPU), then: ogpu provider run --config {}",
        config.stake,
        config_path.display()
    );
    Ok(())
}

fn run_agent(config_path: &std::path::Path) -> Result<()> {
    let config = ProviderConfig::load(config_path)?;
    let key = open_key(&config.key)?;
    serve_dashboard(&config, Address::of(&key.public()))?;
    let profile = ogpu_provider::devices::detect(&config.region);
    let libraries =
        Libraries { onnxruntime: config.onnxruntime.clone(), image_cache: Some(config.work_dir.join("images")) };
    let runtimes = Runtimes::with_defaults(&libraries)?;
    let agent = Agent::start(config, key, runtimes, profile)?;
    println!("provider {} running; Ctrl-C stops it", agent.address());
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(runtime) = runtime {
            let _ = runtime.block_on(crate::node::shutdown_signal());
        }
        on_signal.store(true, Ordering::Relaxed);
    });
    agent.run(&stop);
    Ok(())
}

/// Serves the provider dashboard on a thread of its own for as long as the agent runs, and
/// prints its link; it starts before registering, so the provider sees that too.
fn serve_dashboard(config: &ProviderConfig, me: Address) -> Result<()> {
    let settings = ProviderSettings {
        per_device_second: config.pricing.per_device_second,
        floor: config.pricing.floor,
        margin_bps: config.pricing.margin_bps.into(),
        slots: config.slots,
        max_task_s: config.max_task_s,
    };
    let client = ogpu_client::Client::new(&config.api)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let dashboard =
        runtime.block_on(Dashboard::provider(config.dashboard, client, me, settings, crate::dashboard::token()?))?;
    println!("provider dashboard: {}", dashboard.url());
    std::thread::spawn(move || {
        if let Err(error) = runtime.block_on(dashboard.serve(std::future::pending())) {
            tracing::error!(%error, "the provider dashboard stopped");
        }
    });
    Ok(())
}

fn status(client: &ClientArgs, address: &Address) -> Result<()> {
    let view = client.client()?.provider(address)?;
    if client.format == Format::Json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    let provider = &view.view.provider;
    println!("provider   {address}");
    println!("stake      {} oGPU", provider.stake);
    println!("reputation {}/1000", provider.reputation);
    print_profile(&provider.profile);
    for EventRecord { height, event } in view.events.iter().rev().take(20) {
        println!("  #{height} {event:?}");
    }
    Ok(())
}

/// Sealed bids in auctions still open, and recent awards.
fn bids(client: &ClientArgs, address: &Address) -> Result<()> {
    let api = client.client()?;
    let filter = TaskFilter { phase: Some("bidding".into()), limit: Some(1_000), ..TaskFilter::default() };
    let open: Vec<(TaskId, bool)> = api
        .tasks(&filter)?
        .tasks
        .into_iter()
        .filter_map(|TaskView { id, task }| match task.phase {
            Phase::Bidding { bids, .. } => bids.get(address).map(|bid| (id, bid.revealed.is_some())),
            _ => None,
        })
        .collect();
    let won: Vec<(u64, TaskId, Amount)> = api
        .provider(address)?
        .events
        .into_iter()
        .filter_map(|EventRecord { height, event }| match event {
            Event::Awarded { task, provider, price } if provider == *address => Some((height, task, price)),
            _ => None,
        })
        .collect();
    if client.format == Format::Json {
        let open: Vec<_> = open.iter().map(|(task, revealed)| json!({ "task": task, "revealed": revealed })).collect();
        let won: Vec<_> =
            won.iter().map(|(height, task, price)| json!({ "height": height, "task": task, "price": price })).collect();
        println!("{}", json!({ "provider": address, "open": open, "won": won }));
        return Ok(());
    }
    println!("{} sealed bid(s) in open auctions", open.len());
    for (task, revealed) in &open {
        println!("  {task} {}", if *revealed { "revealed" } else { "sealed" });
    }
    println!("{} recent award(s)", won.len());
    for (height, task, price) in &won {
        println!("  #{height} {task} won at {price} oGPU");
    }
    Ok(())
}

/// Payments and slashes among the provider's recent events, per task and in total.
fn earnings(client: &ClientArgs, address: &Address) -> Result<()> {
    let events = client.client()?.provider(address)?.events;
    let Earnings { total, by_task, by_reason, slashes, .. } = ledger::earnings(*address, &events);
    let reason = |why: &PayReason| serde_json::to_value(why).ok().and_then(|v| v.as_str().map(str::to_string));
    let by_reason: BTreeMap<String, Amount> =
        by_reason.iter().map(|(why, amount)| (reason(why).unwrap_or_default(), *amount)).collect();
    if client.format == Format::Json {
        let by_task: BTreeMap<TaskId, Amount> = by_task.iter().map(|(task, (amount, _))| (*task, *amount)).collect();
        let slashes: Vec<_> = slashes
            .iter()
            .map(|(height, amount, reason)| json!({ "height": height, "amount": amount, "reason": reason }))
            .collect();
        let out = json!({ "provider": address, "total": total, "by_task": by_task, "by_reason": by_reason, "slashes": slashes });
        println!("{out}");
        return Ok(());
    }
    println!("earned {total} oGPU lately over {} task(s)", by_task.len());
    for (why, amount) in &by_reason {
        println!("  {why:<13} {amount} oGPU");
    }
    for (task, (amount, _)) in &by_task {
        println!("  {task} {amount} oGPU");
    }
    for (height, amount, reason) in &slashes {
        println!("  #{height} slashed {amount} oGPU ({reason:?})");
    }
    Ok(())
}

fn print_profile(profile: &DeviceProfile) {
    println!("region     {}", profile.region);
    for device in &profile.devices {
        let kind = if device.kind == DeviceKind::Gpu { "gpu" } else { "cpu" };
        let gflops = if device.gflops == 0 { "not measured".into() } else { format!("{} GFLOPS", device.gflops) };
        println!("{kind}        {}  {} MiB  {gflops}", device.model, device.memory_mb);
    }
}

fn detect(region: &str, format: Format) -> Result<()> {
    let profile = ogpu_provider::devices::detect(region);
    match format {
        Format::Json => println!("{}", serde_json::to_string(&profile)?),
        Format::Table => print_profile(&profile),
    }
    Ok(())
}
