//! The customer dashboard's JSON: the account, its tasks and what they cost, a task's
//! page, the market, the budget, and submitting drafts. Every call to a node goes through
//! `ogpu-client` (blocking) on tokio's blocking threads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ogpu_chain::state::{Outcome, Phase};
use ogpu_client::types::TaskDetail;
use ogpu_client::{TaskFilter, TaskHandle, Wallet};
use ogpu_core::{Amount, TaskId};
use serde_json::json;

use crate::drafts::{self, Drafts};
use crate::error::DashError;
use crate::rows::{self, TaskRow, TimelineEntry};
use crate::shared::{BlockTimes, Live, Tasks, blocking, task_id};

/// Tasks listed at most (the node's own limit).
const TASKS: usize = 1_000;

pub struct Customer {
    wallet: Arc<Wallet>,
    /// Where the budget is kept and results are downloaded.
    dir: PathBuf,
    pub(crate) live: Live,
    drafts: Drafts,
    tasks: Tasks,
    times: BlockTimes,
    /// Results downloaded, by task.
    results: Mutex<HashMap<TaskId, Arc<ResultFiles>>>,
}

/// A task's result on this machine: where, and each file (relative path, size).
struct ResultFiles {
    dir: PathBuf,
    files: Vec<(String, u64)>,
}

type Shared = State<Arc<Customer>>;

fn amount(text: &str, field: &str) -> Result<Amount, DashError> {
    let amount: Amount = text
        .trim()
        .parse()
        .map_err(|_| DashError::bad_input("bad_amount", format!("{text:?} is not an amount of oGPU")).at(field))?;
    if amount.is_zero() {
        return Err(DashError::bad_input("bad_amount", "must be more than 0").at(field));
    }
    Ok(amount)
}

impl Customer {
    pub fn new(wallet: Wallet, dir: PathBuf) -> std::io::Result<Customer> {
        std::fs::create_dir_all(&dir)?;
        Ok(Customer {
            wallet: Arc::new(wallet),
            dir,
            live: Live::default(),
            drafts: Drafts::new()?,
            tasks: Tasks::default(),
            times: BlockTimes::default(),
            results: Mutex::default(),
        })
    }

    fn detail(&self, id: &TaskId) -> Result<Arc<TaskDetail>, DashError> {
        self.tasks.detail(self.wallet.client(), id)
    }

    /// This account's tasks, newest first.
    fn my_tasks(&self) -> Result<Vec<Arc<TaskDetail>>, DashError> {
        let filter = TaskFilter { client: Some(self.wallet.address()), limit: Some(TASKS), ..TaskFilter::default() };
        let mut details: Vec<_> = self
            .wallet
            .client()
            .tasks(&filter)?
            .tasks
            .iter()
            .map(|view| self.detail(&view.id))
            .collect::<Result<_, _>>()?;
        details.sort_by_key(|detail| std::cmp::Reverse(detail.view.task.submitted_at));
        Ok(details)
    }

    fn time_of(&self, height: u64) -> Option<u64> {
        self.times.of(self.wallet.client(), height)
    }

    fn budget_file(&self) -> PathBuf {
        self.dir.join("budget.toml")
    }

    fn budget(&self) -> Option<Amount> {
        #[derive(serde::Deserialize)]
        struct Saved {
            budget: Amount,
        }
        let text = std::fs::read_to_string(self.budget_file()).ok()?;
        toml::from_str::<Saved>(&text).ok().map(|saved| saved.budget)
    }
}

pub fn routes() -> axum::Router<Arc<Customer>> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/api/me", get(me))
        .route("/api/budget", put(set_budget))
        .route("/api/spend", get(spend))
        .route("/api/tasks", get(tasks))
        .route("/api/tasks/{id}", get(task))
        .route("/api/tasks/{id}/steps", get(task_steps))
        .route("/api/tasks/{id}/files", get(files))
        .route("/api/tasks/{id}/files/{*path}", get(file))
        .route("/api/tasks/{id}/cancel", post(cancel))
        .route("/api/tasks/{id}/top-up", post(top_up))
        .route("/api/market", get(market))
        .route("/api/stream", get(stream))
        .route("/api/drafts", post(new_draft))
        .route("/api/drafts/{id}", get(draft))
        .route("/api/drafts/{id}/spec", put(draft_spec))
        .route("/api/drafts/{id}/files/{name}", put(draft_file).delete(remove_draft_file))
        .route("/api/drafts/{id}/submit", post(submit_draft))
}

async fn me(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let client = app.wallet.client();
        let account = client.account(&app.wallet.address())?;
        let height = client.status()?.finalized_height;
        let spent = app.my_tasks()?.iter().fold(Amount::ZERO, |total, detail| {
            total.checked_add(rows::cost(detail.view.task.client, &detail.events)).unwrap_or(total)
        });
        Ok(Json(json!({
            "address": account.address,
            "api": client.base(),
            "height": height,
            "balance": {
                "available": account.balance,
                "escrow": account.escrow,
                "trust_lock": account.trust_lock,
                "staked": account.staked,
                "unbonding": account.unbonding,
            },
            "spent": spent,
            "budget": app.budget(),
        })))
    })
    .await
}

#[derive(serde::Deserialize)]
struct BudgetBody {
    budget: Option<String>,
}

async fn set_budget(State(app): Shared, Json(body): Json<BudgetBody>) -> Result<Json<serde_json::Value>, DashError> {
    let budget = body.budget.as_deref().map(|text| amount(text, "budget")).transpose()?;
    let file = app.budget_file();
    let written = match budget {
        Some(budget) => std::fs::write(&file, format!("budget = \"{budget}\"\n")),
        None => std::fs::remove_file(&file)
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }),
    };
    written.map_err(DashError::internal)?;
    Ok(Json(json!({ "budget": budget })))
}

async fn spend(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let me = app.wallet.address();
        let tasks = app.my_tasks()?;
        let mut changes: Vec<_> = tasks.iter().flat_map(|detail| rows::spend_changes(me, &detail.events)).collect();
        changes.sort_by_key(|(height, _)| *height);
        let mut total = Amount::ZERO;
        let mut points: Vec<serde_json::Value> = Vec::new();
        for (i, (height, change)) in changes.iter().enumerate() {
            total = change.apply(total);
            // One point per block: its last change.
            if changes.get(i + 1).is_some_and(|(next, _)| next == height) {
                continue;
            }
            points.push(json!({ "height": height, "time_ms": app.time_of(*height), "total": total }));
        }
        Ok(Json(json!({ "points": points })))
    })
    .await
}

async fn tasks(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let rows: Vec<TaskRow> =
            app.my_tasks()?.iter().map(|detail| TaskRow::of(&detail.view, &detail.events)).collect();
        Ok(Json(json!({ "tasks": rows })))
    })
    .await
}

async fn task(State(app): Shared, Path(id): Path<String>) -> Result<Json<serde_json::Value>, DashError> {
    let id = task_id(&id)?;
    blocking(move || {
        let detail = app.detail(&id)?;
        let timeline: Vec<TimelineEntry> = detail
            .events
            .iter()
            .map(|record| {
                let (event, text) = rows::describe(&record.event);
                TimelineEntry { height: record.height, time_ms: app.time_of(record.height), event, text }
            })
            .collect();
        let has_result = matches!(detail.view.task.phase, Phase::Done(Outcome::Completed { .. }));
        let row = TaskRow::of(&detail.view, &detail.events);
        Ok(Json(json!({ "task": row, "timeline": timeline, "has_result": has_result })))
    })
    .await
}

async fn task_steps(State(app): Shared, Path(id): Path<String>) -> Result<Response, DashError> {
    app.live.steps(app.wallet.client(), &id)
}

/// Downloads the task's result once into this process's directory; returns it and the
/// files (relative to it) with their sizes.
fn result(app: &Customer, id: TaskId) -> Result<Arc<ResultFiles>, DashError> {
    if let Some(files) = app.results.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return Ok(files.clone());
    }
    let dir = app.dir.join("results").join(id.to_string());
    let paths = TaskHandle::new(app.wallet.client().clone(), id).result(&dir, Some(&app.wallet))?;
    let files = paths
        .iter()
        .map(|path| {
            let size = std::fs::metadata(path).map_err(DashError::internal)?.len();
            let relative = path.strip_prefix(&dir).map_err(DashError::internal)?;
            Ok((relative.to_string_lossy().into_owned(), size))
        })
        .collect::<Result<_, DashError>>()?;
    let files = Arc::new(ResultFiles { dir, files });
    app.results.lock().unwrap_or_else(|p| p.into_inner()).insert(id, files.clone());
    Ok(files)
}

async fn files(State(app): Shared, Path(id): Path<String>) -> Result<Json<serde_json::Value>, DashError> {
    let id = task_id(&id)?;
    blocking(move || {
        let result = result(&app, id)?;
        let files: Vec<_> = result.files.iter().map(|(path, size)| json!({ "path": path, "size": size })).collect();
        Ok(Json(json!({ "files": files })))
    })
    .await
}

async fn file(State(app): Shared, Path((id, path)): Path<(String, String)>) -> Result<Response, DashError> {
    let id = task_id(&id)?;
    let result = blocking(move || result(&app, id)).await?;
    // Only a file of the result: the path is looked up, never joined blindly.
    if !result.files.iter().any(|(known, _)| *known == path) {
        return Err(DashError::not_found("unknown_file", format!("the result of {id} has no file {path}")));
    }
    let bytes = tokio::fs::read(result.dir.join(&path)).await.map_err(DashError::internal)?;
    let name = path.rsplit('/').next().unwrap_or(&path).replace('"', "");
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        bytes,
    )
        .into_response())
}

async fn cancel(State(app): Shared, Path(id): Path<String>) -> Result<Json<serde_json::Value>, DashError> {
    let id = task_id(&id)?;
    blocking(move || {
        TaskHandle::new(app.wallet.client().clone(), id).cancel(&app.wallet)?;
        Ok(Json(json!({ "ok": true })))
    })
    .await
}

#[derive(serde::Deserialize)]
struct TopUpBody {
    max_price: String,
}

async fn top_up(
    State(app): Shared,
    Path(id): Path<String>,
    Json(body): Json<TopUpBody>,
) -> Result<Json<serde_json::Value>, DashError> {
    let id = task_id(&id)?;
    let max_price = amount(&body.max_price, "max_price")?;
    blocking(move || {
        TaskHandle::new(app.wallet.client().clone(), id)
            .top_up(&app.wallet, max_price)
            .map_err(|error| DashError::from(error).at("max_price"))?;
        Ok(Json(json!({ "ok": true })))
    })
    .await
}

async fn market(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let client = app.wallet.client();
        let filter = TaskFilter { phase: Some("bidding".into()), limit: Some(100), ..TaskFilter::default() };
        // Others' open auctions: what the list says of each is all the page shows, so no
        // task is read on its own (the page asks again at every block).
        let auctions: Vec<TaskRow> = client.tasks(&filter)?.tasks.iter().map(|view| TaskRow::of(view, &[])).collect();
        let pools: Vec<_> = client
            .pools(Some(100))?
            .pools
            .into_iter()
            .map(|view| {
                json!({
                    "id": view.id,
                    "name": view.pool.spec.name,
                    "kind": view.pool.spec.kind,
                    "price": view.pool.spec.price_per_job,
                    "subscribers": view.pool.subscribers.len(),
                })
            })
            .collect();
        Ok(Json(json!({ "auctions": auctions, "pools": pools })))
    })
    .await
}

async fn stream(State(app): Shared) -> Response {
    app.live.stream()
}

async fn new_draft(State(app): Shared) -> Result<Json<serde_json::Value>, DashError> {
    Ok(Json(json!({ "id": app.drafts.create()? })))
}

async fn draft(State(app): Shared, Path(id): Path<String>) -> Result<Json<drafts::DraftView>, DashError> {
    blocking(move || app.drafts.view(&id, &app.wallet).map(Json)).await
}

async fn draft_spec(
    State(app): Shared,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<drafts::DraftView>, DashError> {
    if body.len() > drafts::SPEC_BYTES {
        let detail = format!("a spec is at most {} bytes", drafts::SPEC_BYTES);
        return Err(DashError::bad_input("spec_too_large", detail).at("spec"));
    }
    app.drafts.set_spec(&id, body)?;
    draft(State(app), Path(id)).await
}

async fn draft_file(
    State(app): Shared,
    Path((id, name)): Path<(String, String)>,
    body: Body,
) -> Result<Json<drafts::DraftView>, DashError> {
    let max = {
        let app = app.clone();
        blocking(move || Ok(app.wallet.client().params()?.max_blob_bytes)).await?
    };
    app.drafts.put_file(&id, &name, body, max).await?;
    draft(State(app), Path(id)).await
}

async fn remove_draft_file(
    State(app): Shared,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<drafts::DraftView>, DashError> {
    app.drafts.remove_file(&id, &name)?;
    draft(State(app), Path(id)).await
}

async fn submit_draft(State(app): Shared, Path(id): Path<String>) -> Result<Json<serde_json::Value>, DashError> {
    blocking(move || {
        let task = app.drafts.submit(&id, &app.wallet)?;
        Ok(Json(json!({ "task": task })))
    })
    .await
}
