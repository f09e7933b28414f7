//! `ogpu provider`: what a GPU provider runs. `init` writes a key and a config, `run`
//! starts the agent (register, stake, bid, race, run, verify) until Ctrl-C, `status` shows
//! what the chain knows of a provider, and `detect` the device profile this machine would
//! register.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ogpu_client::EventRecord;
use ogpu_core::keystore::{Kdf, Keystore};
use ogpu_core::spec::{DeviceKind, DeviceProfile};
use ogpu_core::{Address, SecretKey};
use ogpu_provider::{Agent, ProviderConfig};
use ogpu_runtime::{Libraries, Runtimes};

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
        /// The provider's config file (its key names the provider).
        #[arg(long, conflicts_with = "address")]
        config: Option<PathBuf>,
        /// Or the provider's address.
        #[arg(long)]
        address: Option<Address>,
    },
    /// Detect and measure this machine's devices.
    Detect {
        /// The region the profile names.
        #[arg(long, default_value = "local")]
        region: String,
    },
}

pub fn run(client: ClientArgs, command: ProviderCommand) -> Result<()> {
    match command {
        ProviderCommand::Init { dir, devnet } => init(&client, &dir, devnet),
        ProviderCommand::Run { config } => run_agent(&config),
        ProviderCommand::Status { config, address } => {
            let address = match (config, address) {
                (_, Some(address)) => address,
                (Some(config), None) => {
                    let config = ProviderConfig::load(&config)?;
                    Address::of(&open_key(&config.key)?.public())
                }
                (None, None) => match &client.key {
                    Some(key) => Address::of(&open_key(key)?.public()),
                    None => bail!("name the provider: --config FILE, --address ADDRESS or --key FILE"),
                },
            };
            status(&client, &address)
        }
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
    let profile = ogpu_provider::devices::detect(&config.region);
    let runtimes = Runtimes::with_defaults(&Libraries { onnxruntime: config.onnxruntime.clone() })?;
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
