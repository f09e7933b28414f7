//! `GET /api/tasks/{id}/steps`: a task's progress for its page's chart and log tail, as
//! server-sent events (`step`, `log`, then `end`), read from the node's log stream on a
//! thread of its own. Only entries whose provider signature holds are passed on.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use ogpu_client::task::{TaskHandle, step_of};
use ogpu_core::tasklog::{LogBody, SignedLogEntry};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::error::DashError;

/// Pages following steps at once, each holding one stream open to the node.
pub const READERS: usize = 8;

pub fn stream(
    task: TaskHandle,
    permit: OwnedSemaphorePermit,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>> + use<>> {
    let (sender, receiver) = mpsc::channel(64);
    std::thread::spawn(move || {
        let _permit = permit;
        read(&task, &sender);
        let _ = sender.blocking_send(SseEvent::default().event("end").data("{}"));
    });
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Sends the task's entries until they end, the node fails, or the page has gone.
fn read(task: &TaskHandle, sender: &mpsc::Sender<SseEvent>) {
    // A page that has gone stops the reading at the node stream's next keep-alive, and
    // gives its place among the readers back.
    let page = sender.clone();
    let entries = match task.verified_entries_while(move || !page.is_closed()) {
        Ok(entries) => entries,
        Err(error) => {
            let _ = sender.blocking_send(log_event(&format!("cannot read the task's log: {error}")));
            return;
        }
    };
    // Replicas report the same steps: the chart takes each step once.
    let mut last_step = None;
    for entry in entries {
        let event = match entry {
            Ok(entry) => match event_of(&entry, &mut last_step) {
                Some(event) => event,
                None => continue,
            },
            Err(error) => log_event(&format!("the task's log stream failed: {error}")),
        };
        if sender.blocking_send(event).is_err() {
            return;
        }
    }
}

fn event_of(entry: &SignedLogEntry, last_step: &mut Option<u64>) -> Option<SseEvent> {
    if let Some(step) = step_of(entry) {
        if last_step.is_some_and(|last| step.step <= last) {
            return None;
        }
        *last_step = Some(step.step);
        let metrics: serde_json::Map<String, serde_json::Value> =
            step.metrics.iter().map(|(name, value)| (name.clone(), json!(value))).collect();
        let data = json!({ "step": step.step, "total": step.total, "metrics": metrics });
        return Some(SseEvent::default().event("step").data(data.to_string()));
    }
    let text = match &entry.entry.body {
        LogBody::Log { stream, line } => format!("[{stream}] {line}"),
        LogBody::Started => "started".into(),
        LogBody::Finished { output } => format!("finished: output {output}"),
        LogBody::Failed { reason } => format!("failed: {reason}"),
        LogBody::Step { .. } => return None,
    };
    Some(log_event(&text))
}

fn log_event(text: &str) -> SseEvent {
    SseEvent::default().event("log").data(json!({ "text": text }).to_string())
}

/// A place among the step readers, or a refusal naming the limit.
pub fn permit(readers: &Arc<tokio::sync::Semaphore>) -> Result<OwnedSemaphorePermit, DashError> {
    readers.clone().try_acquire_owned().map_err(|_| {
        DashError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{READERS} task pages are following progress already; close one"),
        )
    })
}
