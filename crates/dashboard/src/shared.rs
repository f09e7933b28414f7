//! What both apps' handlers use: blocking calls off the async threads, ids from paths,
//! block times and ended tasks (each read once), and the live streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use ogpu_chain::state::Phase;
use ogpu_client::types::TaskDetail;
use ogpu_client::{Client, TaskHandle};
use ogpu_core::TaskId;
use tokio::sync::{Semaphore, broadcast};

use crate::error::DashError;
use crate::hub::{self, Update};
use crate::steps;

/// Runs a blocking `ogpu-client` call on tokio's blocking threads.
pub async fn blocking<T: Send + 'static>(
    run: impl FnOnce() -> Result<T, DashError> + Send + 'static,
) -> Result<T, DashError> {
    tokio::task::spawn_blocking(run).await.map_err(DashError::internal)?
}

pub fn task_id(text: &str) -> Result<TaskId, DashError> {
    text.parse().map_err(|_| DashError::bad_input("bad_task_id", format!("{text:?} is not a task id")))
}

/// Block times by height: a block's time never changes.
#[derive(Default)]
pub struct BlockTimes(Mutex<HashMap<u64, u64>>);

impl BlockTimes {
    /// When the block at `height` was made, in ms since the Unix epoch, if the node says.
    pub fn of(&self, client: &Client, height: u64) -> Option<u64> {
        if let Some(time) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&height) {
            return Some(*time);
        }
        let time = client.block(height).ok()?.time_ms;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(height, time);
        Some(time)
    }
}

/// Tasks read from the node, those that have ended kept: they do not change.
#[derive(Default)]
pub struct Tasks(Mutex<HashMap<TaskId, Arc<TaskDetail>>>);

impl Tasks {
    pub fn detail(&self, client: &Client, id: &TaskId) -> Result<Arc<TaskDetail>, DashError> {
        if let Some(detail) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(detail.clone());
        }
        let detail = Arc::new(client.task(id)?);
        if matches!(detail.view.task.phase, Phase::Done(_)) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(*id, detail.clone());
        }
        Ok(detail)
    }
}

/// What a page is told as it happens: blocks and changes (`/api/stream`, fed by `hub`)
/// and a task's progress (`/api/tasks/{id}/steps`).
pub struct Live {
    pub updates: broadcast::Sender<Update>,
    step_readers: Arc<Semaphore>,
}

impl Default for Live {
    fn default() -> Live {
        Live { updates: broadcast::channel(256).0, step_readers: Arc::new(Semaphore::new(steps::READERS)) }
    }
}

impl Live {
    pub fn stream(&self) -> Response {
        hub::stream(&self.updates).into_response()
    }

    pub fn steps(&self, client: &Client, id: &str) -> Result<Response, DashError> {
        let id = task_id(id)?;
        let permit = steps::permit(&self.step_readers)?;
        Ok(steps::stream(TaskHandle::new(client.clone(), id), permit).into_response())
    }
}
