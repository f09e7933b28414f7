//! `ogpu-dashboard`: the OpenGPU Network's local apps. A process on the user's machine
//! holds the user's unlocked key and serves a dashboard on 127.0.0.1 to the browser of
//! whoever started it (see `gate`: a token in the printed URL, and nothing from another
//! origin); it talks to any node's API through `ogpu-client` only.
//!
//! - `gate`: the token, cookie and origin checks in front of every route, and the
//!   security headers on every answer.
//! - `customer`: the customer dashboard's JSON; `rows` what it shows of a task; `drafts`
//!   submitting from the browser. `provider`: the provider dashboard's JSON, served by the
//!   provider agent's process.
//! - `hub` and `steps`: the live updates (server-sent events); `shared` what both apps'
//!   handlers use.
//! - The pages themselves are `ogpu-web`'s embedded assets.

mod customer;
mod drafts;
mod error;
pub mod gate;
mod hub;
mod provider;
mod rows;
mod shared;
mod steps;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ogpu_client::Wallet;
use ogpu_core::Address;
use tokio::sync::broadcast;

pub use error::DashError;
pub use gate::{Gate, Token};
pub use provider::Settings as ProviderSettings;

/// What went wrong starting a dashboard.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Only this machine's browser may reach a process that holds a key.
    #[error("a dashboard listens on 127.0.0.1 only, not {0}")]
    NotLoopback(SocketAddr),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A dashboard bound to its port, ready to serve.
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    gate: Arc<Gate>,
    router: Router,
    /// What the live updates follow: whose account, on which node, told to whom.
    follow: (ogpu_client::Client, Address, broadcast::Sender<hub::Update>),
}

async fn bind(listen: SocketAddr, token: Token) -> Result<(tokio::net::TcpListener, Arc<Gate>), StartError> {
    if listen.ip() != std::net::Ipv4Addr::LOCALHOST {
        return Err(StartError::NotLoopback(listen));
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let gate = Arc::new(Gate::new(token, listener.local_addr()?.port()));
    Ok((listener, gate))
}

impl Dashboard {
    /// The customer dashboard for `wallet`'s account on `listen` (127.0.0.1, port 0 for
    /// any free one); it keeps the budget and downloaded results under `dir`.
    pub async fn customer(listen: SocketAddr, wallet: Wallet, dir: PathBuf, token: Token) -> Result<Self, StartError> {
        let (listener, gate) = bind(listen, token).await?;
        let (client, me) = (wallet.client().clone(), wallet.address());
        let app = Arc::new(customer::Customer::new(wallet, dir)?);
        let follow = (client, me, app.live.updates.clone());
        let router = pages(customer::routes().with_state(app), "customer", gate.clone());
        Ok(Dashboard { listener, gate, router, follow })
    }

    /// The provider dashboard for the provider at `me`, read through `client`; `settings`
    /// are its agent's, shown as they are.
    pub async fn provider(
        listen: SocketAddr,
        client: ogpu_client::Client,
        me: Address,
        settings: provider::Settings,
        token: Token,
    ) -> Result<Self, StartError> {
        let (listener, gate) = bind(listen, token).await?;
        let app = Arc::new(provider::ProviderApp::new(client.clone(), me, settings));
        let follow = (client, me, app.live.updates.clone());
        let router = pages(provider::routes().with_state(app), "provider", gate.clone());
        Ok(Dashboard { listener, gate, router, follow })
    }

    /// The URL to open, with the token.
    pub fn url(&self) -> String {
        self.gate.url()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, me, updates) = self.follow;
        let stopped = stop.clone();
        std::thread::spawn(move || hub::follow(client, me, updates, stopped));
        let served = axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown).await;
        // The follower notices at the feed's next keep-alive; nothing waits for it.
        stop.store(true, Ordering::Relaxed);
        served
    }
}

/// `app`'s JSON routes, its page at `/` and the shared assets, behind the gate.
fn pages(api: Router, app: &'static str, gate: Arc<Gate>) -> Router {
    let index = move || async move { asset(&format!("{app}/index.html")) };
    api.route("/", axum::routing::get(index))
        .route("/assets/{*path}", axum::routing::get(|Path(path): Path<String>| async move { asset(&path) }))
        .fallback(|| async { DashError::not_found("unknown_route", "no such page or route") })
        .layer(axum::middleware::from_fn_with_state(gate, gate::check))
}

fn asset(path: &str) -> Response {
    match ogpu_web::get(path) {
        Some(asset) => ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response(),
        None => DashError::not_found("unknown_asset", format!("no asset {path}")).into_response(),
    }
}
