//! `ogpu node init|run`: one validator process.
//!
//! A node's data directory holds `genesis.toml`, its key (`validator.key`, an encrypted
//! key file), an optional `config.toml`, and the store. Environment variables override
//! the config file: `OGPU_LISTEN`, `OGPU_BOOTSTRAP` (comma-separated multiaddrs), and
//! `OGPU_API_LISTEN` for the address of the API to serve.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use ogpu_chain::Genesis;
use ogpu_node::service::{self, NodeConfig};
use tokio::sync::oneshot;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Prepare a data directory from a genesis file and a key file.
    Init {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Run the node in a data directory until Ctrl-C or SIGTERM.
    Run {
        #[arg(long)]
        data: PathBuf,
        /// Serve the REST API on this address too (env OGPU_API_LISTEN).
        #[arg(long, env = "OGPU_API_LISTEN")]
        api: Option<SocketAddr>,
    },
}

pub fn run(command: NodeCommand) -> Result<()> {
    match command {
        NodeCommand::Init { data, genesis, key } => {
            std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
            Genesis::from_toml(&std::fs::read_to_string(&genesis)?).context("reading the genesis file")?;
            std::fs::copy(&genesis, data.join("genesis.toml"))?;
            std::fs::copy(&key, data.join("validator.key"))?;
            std::fs::write(data.join("config.toml"), toml::to_string(&NodeConfig::default())?)?;
            println!("initialized {}", data.display());
            Ok(())
        }
        NodeCommand::Run { data, api } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve(&data, api))
        }
    }
}

/// The node's config file with environment overrides applied.
fn config(data: &Path) -> Result<NodeConfig> {
    let path = data.join("config.toml");
    let mut config: NodeConfig = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        Err(_) => NodeConfig::default(),
    };
    if let Ok(listen) = std::env::var("OGPU_LISTEN") {
        config.listen = listen;
    }
    if let Ok(bootstrap) = std::env::var("OGPU_BOOTSTRAP") {
        config.bootstrap = bootstrap.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    }
    Ok(config)
}

async fn serve(data: &Path, api: Option<SocketAddr>) -> Result<()> {
    let genesis =
        Genesis::from_toml(&std::fs::read_to_string(data.join("genesis.toml")).context("reading genesis.toml")?)?;
    // The password from OGPU_PASSWORD or a terminal, never an empty one by default.
    let key = crate::client::open_key(&data.join("validator.key"))?;
    let config = config(data)?;
    let (handle, node) = service::start(config, data.to_path_buf(), key, genesis)?;
    let (stop, shutdown) = oneshot::channel();
    if let Some(address) = api {
        let listener =
            tokio::net::TcpListener::bind(address).await.with_context(|| format!("binding the API to {address}"))?;
        tracing::info!(%address, "API listening");
        let router = ogpu_api::router(handle);
        // With each client's address, which the API's per-client limits count by.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await });
    }
    tokio::spawn(async move {
        let _ = shutdown_signal().await;
        let _ = stop.send(());
    });
    node.run(shutdown).await?;
    Ok(())
}

pub(crate) async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}
