//! `ogpu devnet`: a whole network on loopback, one process per validator and per
//! provider agent.
//!
//! On first run it writes a genesis, one key per validator, one funded key and config per
//! provider, and a funded demo client key into the data directory; later runs resume from
//! it. It picks free ports, starts each validator with the others as bootstrap peers,
//! serves the API from the first, starts the providers against that API once it answers,
//! prints what to do next, and on Ctrl-C stops every child.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ogpu_chain::Genesis;
use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_core::keystore::{Kdf, Keystore};
use ogpu_core::{Address, Amount, SecretKey};
use ogpu_node::service::NodeConfig;
use ogpu_provider::ProviderConfig;
use ogpu_provider::pricing::Pricing;

/// The devnet's least time between blocks: long enough for a provider on a loaded
/// machine to see a block and get its bid or reveal into the next one.
pub const BLOCK_MS: u64 = 500;

pub struct DevnetArgs {
    pub validators: usize,
    /// Where validator `i` serves the API, for the first `apis.len()` validators; the
    /// first is the one providers use.
    pub apis: Vec<SocketAddr>,
    pub data: PathBuf,
    pub providers: usize,
    pub block_ms: u64,
    /// Extra accounts funded at genesis, keys `bench_sender(i)`, for load tests.
    pub fund: usize,
    /// Where the client dashboard listens; port 0 for any free one.
    pub dashboard: SocketAddr,
}

/// The key of the `i`-th account a devnet funds for load tests.
pub fn bench_sender(i: usize) -> SecretKey {
    SecretKey::from_name(&format!("devnet-bench-sender-{i}"))
}

impl DevnetArgs {
    /// The API providers and the printed hints use: the first validator's.
    pub fn api(&self) -> SocketAddr {
        self.apis[0]
    }
}

fn node_dir(data: &Path, i: usize) -> PathBuf {
    data.join(format!("validator-{i}"))
}

/// The `i`-th provider's directory: `provider.key` and `provider.toml`.
pub fn provider_dir(data: &Path, i: usize) -> PathBuf {
    data.join(format!("provider-{i}"))
}

/// The chain parameters of a devnet: the defaults, with a pool's commit window long
/// enough in blocks for a provider to fetch, run and commit a small job.
fn devnet_params() -> ogpu_chain::Params {
    ogpu_chain::Params { pool_commit_blocks: 6, ..Default::default() }
}

/// Writes the providers' keys and configs; they differ in margin so auctions have a
/// visible order. Returns the keys, to be funded at genesis.
fn prepare_providers(args: &DevnetArgs) -> Result<Vec<SecretKey>> {
    (0..args.providers)
        .map(|i| {
            let dir = provider_dir(&args.data, i);
            std::fs::create_dir_all(&dir)?;
            let key = SecretKey::generate(&mut rand_core::OsRng);
            write_key(&dir.join("provider.key"), &key)?;
            let config = ProviderConfig {
                api: format!("http://{}", args.api()),
                pools: vec!["*".into()],
                pricing: Pricing {
                    floor: Amount::from_base_units(10u128.pow(12)),
                    margin_bps: 1_000 * (i as u16 + 1),
                    ..Pricing::default()
                },
                ..ProviderConfig::default()
            };
            std::fs::write(dir.join("provider.toml"), toml::to_string(&config)?)?;
            Ok(key)
        })
        .collect()
}

fn write_key(path: &Path, key: &SecretKey) -> Result<()> {
    let sealed = Keystore::seal(key, "", Kdf::DEVNET, &mut rand_core::OsRng)?;
    std::fs::write(path, sealed.to_json()).with_context(|| format!("writing {}", path.display()))
}

/// Writes keys and genesis on first run; returns the validators' keys.
fn prepare(args: &DevnetArgs) -> Result<Vec<SecretKey>> {
    let genesis_path = args.data.join("genesis.toml");
    if genesis_path.exists() {
        let genesis = Genesis::from_toml(&std::fs::read_to_string(&genesis_path)?)?;
        if genesis.validators.len() != args.validators {
            bail!(
                "{} holds a devnet of {} validators; use that number or another --data",
                args.data.display(),
                genesis.validators.len()
            );
        }
        return (0..args.validators)
            .map(|i| {
                let text = std::fs::read_to_string(node_dir(&args.data, i).join("validator.key"))?;
                Ok(Keystore::from_json(&text)?.open("")?)
            })
            .collect();
    }
    std::fs::create_dir_all(&args.data)?;
    let keys: Vec<SecretKey> = (0..args.validators).map(|_| SecretKey::generate(&mut rand_core::OsRng)).collect();
    let client = SecretKey::generate(&mut rand_core::OsRng);
    write_key(&args.data.join("client.key"), &client)?;
    let providers = prepare_providers(args)?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let genesis = Genesis {
        chain_id: "ogpu-devnet".parse()?,
        genesis_time_ms: now_ms,
        params: devnet_params(),
        allocations: std::iter::once(Allocation {
            address: Address::of(&client.public()),
            amount: Amount::ogpu(1_000_000),
        })
        .chain(providers.iter().map(|k| Allocation { address: Address::of(&k.public()), amount: Amount::ogpu(10_000) }))
        .chain(
            (0..args.fund)
                .map(|i| Allocation { address: Address::of(&bench_sender(i).public()), amount: Amount::ogpu(1_000) }),
        )
        .collect(),
        validators: keys
            .iter()
            .map(|k| GenesisValidator { public_key: k.public(), stake: Amount::ogpu(10_000) })
            .collect(),
    };
    std::fs::write(&genesis_path, genesis.to_toml())?;
    for (i, key) in keys.iter().enumerate() {
        let dir = node_dir(&args.data, i);
        std::fs::create_dir_all(&dir)?;
        write_key(&dir.join("validator.key"), key)?;
        std::fs::copy(&genesis_path, dir.join("genesis.toml"))?;
    }
    Ok(keys)
}

/// `count` ports free now and different from each other and from the API's: each is held
/// until all are chosen, since a port given back can be handed out again at once.
pub(crate) fn free_ports(count: usize, api: &[SocketAddr]) -> Result<Vec<u16>> {
    let mut held = Vec::new();
    while held.len() < count {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if api.iter().all(|api| api.port() != port) {
            held.push(listener);
        }
    }
    held.iter().map(|listener| Ok(listener.local_addr()?.port())).collect()
}

/// Waits until the first validator's API answers: the provider agents and the dashboard
/// read the chain as they start.
fn wait_for_api(args: &DevnetArgs) -> Result<()> {
    let client = ogpu_client::Client::new(&format!("http://{}", args.api()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while client.status().is_err() {
        if std::time::Instant::now() > deadline {
            bail!("the API at {} did not answer within a minute", args.api());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The provider agents' configs: a devnet resumed with fewer provider directories than
/// asked for has those it has.
fn provider_configs(args: &DevnetArgs) -> Vec<PathBuf> {
    (0..args.providers)
        .map(|i| provider_dir(&args.data, i).join("provider.toml"))
        .take_while(|config| config.exists())
        .collect()
}

/// Starts the provider agents of `configs`, each with its dashboard on one of `ports`.
fn start_providers(
    exe: &Path,
    configs: &[PathBuf],
    ports: impl Iterator<Item = u16>,
) -> Result<Vec<(String, Child, String)>> {
    configs
        .iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (config, port))| {
            // The devnet prints each agent's dashboard link, so it chooses port and token.
            let token = crate::dashboard::token()?;
            let mut command = Command::new(exe);
            command
                .args(["provider", "run", "--config"])
                .arg(config)
                .env("OGPU_PASSWORD", "")
                .env("OGPU_PROVIDER_DASHBOARD", format!("127.0.0.1:{port}"))
                .env("OGPU_DASHBOARD_TOKEN", token.as_str());
            let name = format!("provider {i}; restart it with: ogpu provider run --config {}", config.display());
            let link = format!("http://127.0.0.1:{port}/?token={}", token.as_str());
            Ok((name, command.spawn().with_context(|| format!("starting provider {i}"))?, link))
        })
        .collect()
}

/// Starts the customer dashboard for the demo client's key; returns it and its link.
fn start_dashboard(args: &DevnetArgs, exe: &Path) -> Result<((String, Child), String)> {
    let token = crate::dashboard::token()?;
    let url = format!("http://{}/?token={}", args.dashboard, token.as_str());
    let child = Command::new(exe)
        .args(["dashboard", "--listen", &args.dashboard.to_string(), "--api", &format!("http://{}", args.api())])
        .arg("--key")
        .arg(args.data.join("client.key"))
        .arg("--dir")
        .arg(args.data.join("dashboard"))
        .env("OGPU_PASSWORD", "")
        .env("OGPU_DASHBOARD_TOKEN", token.as_str())
        // Its own link would repeat the one the devnet prints.
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the client dashboard")?;
    let name = format!(
        "the client dashboard; restart it with: OGPU_PASSWORD= ogpu dashboard --listen {} --api http://{} --key {} --dir {}",
        args.dashboard,
        args.api(),
        args.data.join("client.key").display(),
        args.data.join("dashboard").display()
    );
    Ok(((name, child), url))
}

pub fn run(mut args: DevnetArgs) -> Result<()> {
    if args.apis.is_empty() || args.apis.len() > args.validators {
        bail!("give --api once per validator that serves it, 1 to {} times", args.validators);
    }
    let keys = prepare(&args)?;
    let configs = provider_configs(&args);
    // Every port the devnet hands out (validators, the client's and the providers'
    // dashboards), chosen at once so that none is chosen twice.
    let mut free = free_ports(keys.len() + 1 + configs.len(), &args.apis)?.into_iter();
    let ports: Vec<u16> = free.by_ref().take(keys.len()).collect();
    let dashboard_port = free.next().context("a port for the client dashboard")?;
    if args.dashboard.port() == 0 {
        args.dashboard.set_port(dashboard_port);
    }
    let addresses: Vec<String> = keys
        .iter()
        .zip(&ports)
        .map(|(key, port)| {
            let peer = ogpu_node::net::peer_id_of(&key.public()).expect("an ed25519 key is a peer id");
            format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}")
        })
        .collect();
    let exe = std::env::current_exe()?;
    // Each with what to call it when it exits early.
    let mut children: Vec<(String, Child)> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let dir = node_dir(&args.data, i);
        let bootstrap: Vec<&str> =
            addresses.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| a.as_str()).collect();
        // The addresses go into each validator's config file, so a validator can be
        // restarted on its own with `ogpu node run --data DIR` while the devnet runs.
        let config = NodeConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{port}"),
            bootstrap: bootstrap.iter().map(|a| a.to_string()).collect(),
            proposer_window_ms: 500,
            min_block_interval_ms: args.block_ms,
            ..NodeConfig::default()
        };
        std::fs::write(dir.join("config.toml"), toml::to_string(&config)?)?;
        let mut command = Command::new(&exe);
        command
            .args(["node", "run", "--data"])
            .arg(&dir)
            .env("OGPU_PASSWORD", "")
            .env_remove("OGPU_API_LISTEN")
            .env_remove("OGPU_LISTEN")
            .env_remove("OGPU_BOOTSTRAP");
        if let Some(api) = args.apis.get(i) {
            command.args(["--api", &api.to_string()]);
        }
        let name = format!("validator {i}; restart it with: ogpu node run --data {}", dir.display());
        children.push((name, command.spawn().with_context(|| format!("starting validator {i}"))?));
    }
    wait_for_api(&args)?;
    let providers = start_providers(&exe, &configs, free)?;
    let provider_links: Vec<String> = providers.iter().map(|(_, _, link)| link.clone()).collect();
    children.extend(providers.into_iter().map(|(name, child, _)| (name, child)));
    println!("OpenGPU devnet: {} validators and {} providers on 127.0.0.1", keys.len(), children.len() - keys.len());
    let (dashboard, url) = start_dashboard(&args, &exe)?;
    children.push(dashboard);
    for api in &args.apis {
        println!("  API         http://{api}/v1/status");
    }
    println!("  client key  {} (empty password)", args.data.join("client.key").display());
    println!("  client dashboard  {url}");
    for (i, link) in provider_links.iter().enumerate() {
        println!("  provider {i} dashboard  {link}");
    }
    println!("  data        {}", args.data.display());
    println!("Next: curl http://{}/v1/status", args.api());
    println!(
        "Submit a task: OGPU_KEY={} OGPU_PASSWORD= ogpu task submit examples/wasm-sum.toml --api http://{}",
        args.data.join("client.key").display(),
        args.api()
    );
    println!("Ctrl-C stops every process; running `ogpu devnet` again resumes.");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut reported = vec![false; children.len()];
    runtime.block_on(async {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    // A validator that dies does not take the network down: the others go
                    // on, and it can be restarted on its own from its data directory.
                    for (i, (name, child)) in children.iter_mut().enumerate() {
                        if let (Ok(Some(status)), false) = (child.try_wait(), reported[i]) {
                            reported[i] = true;
                            eprintln!("{name} exited ({status})");
                        }
                    }
                }
            }
        }
    });
    for (_, child) in &mut children {
        if matches!(child.try_wait(), Ok(None)) {
            // SIGTERM lets each node close its store cleanly.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
    }
    for (_, child) in &mut children {
        let _ = child.wait();
    }
    Ok(())
}
