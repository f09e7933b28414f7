//! The provider dashboard's JSON, served by the provider agent's own process: its devices
//! and stake as registered on chain, its pricing, its work (running tasks, bids, open
//! auctions) and what it has earned and been slashed, all read through `ogpu-client`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use ogpu_chain::Event;
use ogpu_chain::state::Phase;
use ogpu_client::ledger::{self, Earnings};
use ogpu_client::types::ProviderDetail;
use ogpu_client::{Client, EventRecord, TaskFilter};
use ogpu_core::{Address, Amount};
use serde_json::json;

use crate::error::DashError;
use crate::shared::{BlockTimes, Live, Tasks, blocking};

/// What the agent works by, as its config says: shown, not edited here.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// The cost of one device busy for one second.
    pub per_device_second: Amount,
    /// The least it works for.
    pub floor: Amount,
    /// Added on top of the cost, in basis points.
    pub margin_bps: u32,
    /// Tasks it runs at once.
    pub slots: usize,
    /// The longest time limit a task may have for it to take the task.
    pub max_task_s: u32,
}

pub struct ProviderApp {
    client: Client,
    me: Address,
    settings: Settings,
    pub(crate) live: Live,
    tasks: Tasks,
    times: BlockTimes,
}

type Shared = State<Arc<ProviderApp>>;

impl ProviderApp {
    pub fn new(client: Client, me: Address, settings: Settings) -> ProviderApp {
        ProviderApp {
            client,
            me,
            settings,
            live: Live::default(),
            tasks: Tasks::default(),
            times: BlockTimes::default(),
        }
    }

    /// The provider as registered, with its recent events (the node keeps the latest 100
    /// per party); `None` before it registered.
    fn registered(&self) -> Result<Option<ProviderDetail>, DashError> {
        match self.client.provider(&self.me) {
            Ok(detail) => Ok(Some(detail)),
            Err(error) if error.api_error() == Some("unknown_provider") => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn events(&self) -> Result<Vec<EventRecord>, DashError> {
        Ok(self.registered()?.map(|detail| detail.events).unwrap_or_default())
    }
}

pub fn routes() -> axum::Router<Arc<ProviderApp>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/provider", get(provider))
        .route("/api/earnings", get(earnings))
        .route("/api/work", get(work))
        .route("/api/tasks/{id}/steps", get(task_steps))
        .route("/api/stream", get(stream))
}

async fn provider(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let client = &app.client;
        let registered = app.registered()?.map(|detail| detail.view.provider);
        let account = client.account(&app.me)?;
        let height = client.status()?.finalized_height;
        let pools: Vec<_> = client
            .pools(Some(1_000))?
            .pools
            .into_iter()
            .filter_map(|view| {
                let stake = *view.pool.subscribers.get(&app.me)?;
                let spec = view.pool.spec;
                Some(json!({ "id": view.id, "name": spec.name, "kind": spec.kind, "price": spec.price_per_job, "stake": stake }))
            })
            .collect();
        let settings = &app.settings;
        Ok(Json(json!({
            "address": app.me,
            "online": true,
            "api": client.base(),
            "height": height,
            "registered": registered.is_some(),
            "region": registered.as_ref().map(|p| p.profile.region.clone()),
            "devices": registered.as_ref().map(|p| p.profile.devices.clone()).unwrap_or_default(),
            "stake": registered.as_ref().map_or(Amount::ZERO, |p| p.stake),
            "reputation": registered.as_ref().map(|p| p.reputation),
            "jailed_until": registered.as_ref().map_or(0, |p| p.jailed_until),
            "balance": {
                "available": account.balance,
                "staked": account.staked,
                "trust_lock": account.trust_lock,
                "unbonding": account.unbonding,
            },
            "pricing": {
                "per_device_second": settings.per_device_second,
                "floor": settings.floor,
                "margin_bps": settings.margin_bps,
            },
            "slots": settings.slots,
            "max_task_s": settings.max_task_s,
            "pools": pools,
        })))
    })
    .await
}

async fn earnings(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let Earnings { total, by_task, by_reason, over_time, slashes } = ledger::earnings(app.me, &app.events()?);
        let time = |height: u64| app.times.of(&app.client, height);
        let points: Vec<_> = over_time
            .iter()
            .map(|(height, total)| json!({ "height": height, "time_ms": time(*height), "total": total }))
            .collect();
        let by_task: Vec<_> = by_task
            .iter()
            .map(|(task, (amount, reasons))| json!({ "task": task, "amount": amount, "reasons": reasons }))
            .collect();
        let slashes: Vec<_> = slashes
            .iter()
            .map(|(height, amount, reason)| {
                json!({ "height": height, "time_ms": time(*height), "amount": amount, "reason": reason })
            })
            .collect();
        Ok(Json(
            json!({ "total": total, "points": points, "by_task": by_task, "by_reason": by_reason, "slashes": slashes }),
        ))
    })
    .await
}

async fn work(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let awards: Vec<_> = app
            .events()?
            .into_iter()
            .filter_map(|EventRecord { height, event }| match event {
                Event::Awarded { task, provider, price } if provider == app.me => Some((height, task, price)),
                _ => None,
            })
            .collect();
        let mut running = Vec::new();
        let mut won = Vec::new();
        for (height, id, price) in awards.iter().rev() {
            let detail = app.tasks.detail(&app.client, id)?;
            let task = &detail.view.task;
            won.push(json!({ "task": id, "name": task.spec.name, "max_price": task.price_cap, "state": "won" }));
            if !matches!(task.phase, Phase::Done(_)) {
                running.push(json!({
                    "task": id, "name": task.spec.name, "kind": task.spec.workload.kind,
                    "phase": task.phase.name(), "price": price, "awarded_height": height,
                }));
            }
        }
        let filter = TaskFilter { phase: Some("bidding".into()), limit: Some(100), ..TaskFilter::default() };
        let (mut auctions, mut bids) = (Vec::new(), Vec::new());
        for view in app.client.tasks(&filter)?.tasks {
            let Phase::Bidding { bids: sealed, .. } = &view.task.phase else { continue };
            let mine = sealed.get(&app.me);
            if let Some(bid) = mine {
                let state = if bid.revealed.is_some() { "revealed" } else { "sealed" };
                let name = &view.task.spec.name;
                bids.push(json!({ "task": view.id, "name": name, "max_price": view.task.price_cap, "state": state }));
            }
            auctions.push(json!({
                "task": view.id, "name": view.task.spec.name, "kind": view.task.spec.workload.kind,
                "max_price": view.task.price_cap, "bids": sealed.len(), "mine": mine.is_some(),
            }));
        }
        // Open bids first, then the awards, newest first.
        bids.extend(won);
        Ok(Json(json!({ "running": running, "bids": bids, "auctions": auctions })))
    })
    .await
}

async fn task_steps(State(app): Shared, Path(id): Path<String>) -> Result<Response, DashError> {
    app.live.steps(&app.client, &id)
}

async fn stream(State(app): Shared) -> Response {
    app.live.stream()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ogpu_chain::receipt::PayReason;
    use ogpu_core::Amount;

    /// The earnings page reads payments by reason as an object keyed by the reason's name.
    #[test]
    fn earnings_by_reason_are_keyed_by_the_reasons_name() {
        let by_reason =
            BTreeMap::from([(PayReason::Execution, Amount::ogpu(3)), (PayReason::ChallengeBond, Amount::ogpu(1))]);
        assert_eq!(serde_json::json!(by_reason), serde_json::json!({ "execution": "3", "challenge_bond": "1" }));
    }
}
