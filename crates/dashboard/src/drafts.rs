//! Submitting from the browser: a draft is a spec and the files it names, uploaded one by
//! one into a directory of this process, checked after each upload (what is missing, what
//! the spec does not name, what the task would reserve) and submitted only when all is
//! well. Nothing is reserved or uploaded to the node before the user submits.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ogpu_client::Wallet;
use ogpu_client::spec::{self, ResolvedSpec};
use ogpu_client::task::{self, Quote};
use ogpu_core::Amount;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::error::DashError;

/// Drafts kept at once; a new one past it replaces the oldest.
const DRAFTS: usize = 4;
/// How long an untouched draft is kept.
const LIFETIME: Duration = Duration::from_secs(3600);
/// The largest spec file taken.
pub const SPEC_BYTES: usize = 64 << 10;

pub struct Drafts {
    dir: tempfile::TempDir,
    open: Mutex<HashMap<String, Draft>>,
}

#[derive(Clone)]
struct Draft {
    dir: PathBuf,
    spec: Option<String>,
    /// The basenames of the files uploaded.
    files: BTreeSet<String>,
    touched: Instant,
}

/// A draft as the submit page shows it.
#[derive(Debug, serde::Serialize)]
pub struct DraftView {
    pub id: String,
    /// The files the spec names by path.
    pub needs: Vec<String>,
    /// Those not uploaded yet.
    pub missing: Vec<String>,
    /// Files uploaded that the spec does not name.
    pub extra: Vec<String>,
    pub quote: Option<QuoteView>,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, serde::Serialize)]
pub struct QuoteView {
    pub reserved: Amount,
    pub balance: Amount,
}

#[derive(Debug, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl From<DashError> for FieldError {
    fn from(error: DashError) -> FieldError {
        FieldError { field: error.field().unwrap_or("spec").into(), detail: error.detail().into() }
    }
}

/// A draft's spec, read and with every file it names found among the uploads.
struct Checked {
    view: DraftView,
    resolved: Option<ResolvedSpec>,
}

impl Drafts {
    pub fn new() -> std::io::Result<Drafts> {
        Ok(Drafts { dir: tempfile::Builder::new().prefix("ogpu-drafts").tempdir()?, open: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Draft>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new, empty draft; returns its id.
    pub fn create(&self) -> Result<String, DashError> {
        let id = crate::gate::Token::generate().map_err(DashError::internal)?.as_str()[..16].to_string();
        let dir = self.dir.path().join(&id);
        std::fs::create_dir(&dir).map_err(DashError::internal)?;
        let mut open = self.lock();
        open.retain(|_, draft| {
            let fresh = draft.touched.elapsed() < LIFETIME;
            if !fresh {
                remove(&draft.dir);
            }
            fresh
        });
        while open.len() >= DRAFTS {
            let oldest = open.iter().min_by_key(|(_, draft)| draft.touched).map(|(id, _)| id.clone());
            if let Some(draft) = oldest.and_then(|id| open.remove(&id)) {
                remove(&draft.dir);
            }
        }
        open.insert(id.clone(), Draft { dir, spec: None, files: BTreeSet::new(), touched: Instant::now() });
        Ok(id)
    }

    fn get(&self, id: &str) -> Result<Draft, DashError> {
        let mut open = self.lock();
        let draft = open.get_mut(id).ok_or_else(|| DashError::not_found("unknown_draft", format!("no draft {id}")))?;
        draft.touched = Instant::now();
        Ok(draft.clone())
    }

    pub fn set_spec(&self, id: &str, text: String) -> Result<(), DashError> {
        let mut open = self.lock();
        let draft = open.get_mut(id).ok_or_else(|| DashError::not_found("unknown_draft", format!("no draft {id}")))?;
        draft.spec = Some(text);
        draft.touched = Instant::now();
        Ok(())
    }

    /// Streams an upload into the draft as `name`, up to `max` bytes.
    pub async fn put_file(&self, id: &str, name: &str, body: axum::body::Body, max: u64) -> Result<(), DashError> {
        let bad_name = || DashError::bad_input("bad_file_name", format!("{name:?} is not a file name")).at("files");
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
            return Err(bad_name());
        }
        let draft = self.get(id)?;
        let path = draft.dir.join(name);
        let mut file = tokio::fs::File::create(&path).await.map_err(DashError::internal)?;
        let mut chunks = body.into_data_stream();
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| DashError::bad_input("upload_failed", e))?;
            size += chunk.len() as u64;
            if size > max {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                let detail = format!("{name} is over the network's largest blob, {max} bytes");
                return Err(DashError::bad_input("blob_too_large", detail).at("files"));
            }
            file.write_all(&chunk).await.map_err(DashError::internal)?;
        }
        file.flush().await.map_err(DashError::internal)?;
        let mut open = self.lock();
        if let Some(draft) = open.get_mut(id) {
            draft.files.insert(name.to_string());
        }
        Ok(())
    }

    /// Takes the file `name` out of the draft.
    pub fn remove_file(&self, id: &str, name: &str) -> Result<(), DashError> {
        let mut open = self.lock();
        let draft = open.get_mut(id).ok_or_else(|| DashError::not_found("unknown_draft", format!("no draft {id}")))?;
        if !draft.files.remove(name) {
            return Err(DashError::not_found("unknown_file", format!("the draft has no file {name:?}")).at("files"));
        }
        let _ = std::fs::remove_file(draft.dir.join(name));
        Ok(())
    }

    /// The draft checked against the spec and, when complete, quoted (blocking: it hashes
    /// files and asks the node).
    pub fn view(&self, id: &str, wallet: &Wallet) -> Result<DraftView, DashError> {
        Ok(check(id, &self.get(id)?, wallet).view)
    }

    /// Submits the draft when it is complete and checks out; the draft is gone after. A
    /// private task's keys are then handed to its workers from a thread that follows it
    /// until it ends.
    pub fn submit(&self, id: &str, wallet: &Arc<Wallet>) -> Result<ogpu_core::TaskId, DashError> {
        let draft = self.get(id)?;
        let Checked { view, resolved } = check(id, &draft, wallet);
        if let Some(error) = view.errors.into_iter().next() {
            return Err(DashError::bad_input("invalid_draft", error.detail).at(&error.field));
        }
        if !view.missing.is_empty() {
            let detail = format!("add {} first", view.missing.join(", "));
            return Err(DashError::bad_input("missing_files", detail).at("files"));
        }
        let resolved = resolved.ok_or_else(|| DashError::bad_input("invalid_draft", "choose a spec").at("spec"))?;
        let task = task::submit(wallet, &resolved, |_| {})?;
        if resolved.private {
            drop(task.deliver_keys_in_background(wallet.clone()));
        }
        if let Some(draft) = self.lock().remove(id) {
            remove(&draft.dir);
        }
        Ok(task.id())
    }
}

fn remove(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir) {
        tracing::warn!(%error, dir = %dir.display(), "could not remove a draft");
    }
}

/// The fields of a spec document that name files, with what they say.
fn named_files(document: &Value) -> Vec<(String, String)> {
    let workload = document.get("workload");
    let program = workload.and_then(|w| w.get("program")).map(|value| ("workload.program".to_string(), value));
    let inputs = workload.and_then(|w| w.get("inputs")).and_then(Value::as_object).into_iter().flatten();
    program
        .into_iter()
        .chain(inputs.map(|(name, value)| (format!("workload.inputs.{name:?}"), value)))
        .filter_map(|(field, value)| value.as_str().map(|text| (field, text.to_string())))
        .filter(|(_, text)| !text.starts_with("blake3:"))
        .collect()
}

fn check(id: &str, draft: &Draft, wallet: &Wallet) -> Checked {
    let mut view = DraftView {
        id: id.to_string(),
        needs: Vec::new(),
        missing: Vec::new(),
        extra: Vec::new(),
        quote: None,
        errors: Vec::new(),
    };
    let refuse = |mut view: DraftView, error: DashError| {
        view.errors.push(error.into());
        Checked { view, resolved: None }
    };
    let Some(text) = &draft.spec else {
        view.extra = draft.files.iter().cloned().collect();
        return Checked { view, resolved: None };
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(error) => return refuse(view, DashError::bad_input("invalid_spec", error).at("spec")),
    };
    let Ok(mut document) = serde_json::to_value(table) else {
        return refuse(view, DashError::bad_input("invalid_spec", "the spec is not a table").at("spec"));
    };
    // Each file the spec names is the upload with its basename, wherever the spec put it.
    let mut used = BTreeSet::new();
    for (field, path) in named_files(&document) {
        view.needs.push(path.clone());
        let basename = Path::new(&path).file_name().and_then(|name| name.to_str()).unwrap_or_default().to_string();
        if draft.files.contains(&basename) {
            set_field(&mut document, &field, draft.dir.join(&basename));
            used.insert(basename);
        } else {
            view.missing.push(path);
        }
    }
    view.extra = draft.files.difference(&used).cloned().collect();
    for extra in &view.extra {
        view.errors.push(FieldError { field: "files".into(), detail: format!("the spec names no file {extra}") });
    }
    if !view.missing.is_empty() {
        return Checked { view, resolved: None };
    }
    let resolved = match spec::resolve_document(document, &draft.dir, Path::new("spec")) {
        Ok(resolved) => resolved,
        Err(error) => return refuse(view, error.into()),
    };
    match task::quote(wallet, &resolved.spec) {
        Ok(Quote { reserved, balance }) => {
            if balance < reserved {
                let detail = format!("the task reserves {reserved} oGPU and the account has {balance} oGPU");
                view.errors.push(FieldError { field: "market.max_price".into(), detail });
            }
            view.quote = Some(QuoteView { reserved, balance });
        }
        Err(error) => return refuse(view, error.into()),
    }
    Checked { view, resolved: Some(resolved) }
}

/// Points the field (`workload.program` or `workload.inputs."NAME"`) at `path`.
fn set_field(document: &mut Value, field: &str, path: PathBuf) {
    let value = Value::String(path.to_string_lossy().into_owned());
    let Some(workload) = document.get_mut("workload") else { return };
    if field == "workload.program" {
        workload["program"] = value;
    } else if let Some(name) =
        field.strip_prefix("workload.inputs.").and_then(|n| serde_json::from_str::<String>(n).ok())
        && let Some(inputs) = workload.get_mut("inputs").and_then(Value::as_object_mut)
    {
        inputs.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_a_spec_names_are_found_by_field() {
        let document = serde_json::json!({
            "workload": {
                "program": "digits-train/mlp.toml",
                "inputs": { "digits.csv.gz": "data/digits.csv.gz", "stored": "blake3:00" }
            }
        });
        assert_eq!(
            named_files(&document),
            [
                ("workload.program".to_string(), "digits-train/mlp.toml".to_string()),
                ("workload.inputs.\"digits.csv.gz\"".to_string(), "data/digits.csv.gz".to_string()),
            ]
        );
        let mut document = document;
        set_field(&mut document, "workload.inputs.\"digits.csv.gz\"", PathBuf::from("/d/digits.csv.gz"));
        assert_eq!(document["workload"]["inputs"]["digits.csv.gz"], "/d/digits.csv.gz");
    }
}
