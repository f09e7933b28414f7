//! `ogpu dashboard`: the customer dashboard for the signing key's account, served on
//! 127.0.0.1 to the browser that opens the printed link.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use ogpu_dashboard::{Dashboard, Token};

use crate::client::ClientArgs;

#[derive(clap::Args)]
pub struct DashboardArgs {
    /// Where to serve it: 127.0.0.1 only (port 0 for any free one).
    #[arg(long, env = "OGPU_DASHBOARD_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Where it keeps the budget you set and the results you download.
    #[arg(long, env = "OGPU_DASHBOARD_DIR", default_value = "ogpu-dashboard")]
    dir: PathBuf,
}

/// The token in the printed link: `OGPU_DASHBOARD_TOKEN` when set (a launcher that prints
/// the link itself), a fresh random one otherwise.
pub fn token() -> Result<Token> {
    match std::env::var("OGPU_DASHBOARD_TOKEN") {
        Ok(text) => Token::given(&text).context("OGPU_DASHBOARD_TOKEN must be at least 32 letters and digits"),
        Err(_) => Ok(Token::generate()?),
    }
}

pub fn run(client: ClientArgs, args: DashboardArgs) -> Result<()> {
    let wallet = client.wallet()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let dashboard = Dashboard::customer(args.listen, wallet, args.dir, token()?).await?;
        println!("customer dashboard: {}", dashboard.url());
        println!("The link holds this run's token: anyone with it acts with your key. Ctrl-C stops it.");
        dashboard
            .serve(async {
                let _ = crate::node::shutdown_signal().await;
            })
            .await?;
        Ok(())
    })
}
