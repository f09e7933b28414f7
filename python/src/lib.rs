//! `ogpu._native`: the Python SDK's bindings over `ogpu-client`. Every call that waits on
//! the network lets go of the GIL. Answers cross as JSON text (the API's own shapes), which
//! the `ogpu` package reads into dicts; errors cross as one exception carrying the error's
//! name, which the package turns into its `OgpuError` subclasses.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ogpu_client::spec::{ResolvedSpec, SpecError};
use ogpu_client::task::Step;
use ogpu_client::{Client, ClientError, ErrorKind, TaskError, TaskHandle, Wallet};
use ogpu_core::keystore::Keystore;
use ogpu_core::{Address, Amount, TaskId};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    NativeError,
    PyException,
    "An error of the network or the SDK: args are (kind, name, message); the kind picks the package's subclass."
);

/// What the caller handed over was unusable; nothing was sent.
const BAD_INPUT: &str = "bad_input";

/// The exception for bad input named `name`.
fn raise(name: &str, error: impl std::fmt::Display) -> PyErr {
    NativeError::new_err((BAD_INPUT, name.to_string(), error.to_string()))
}

/// The exception for `error`, of the kind the package has a subclass for.
fn task_error(error: TaskError) -> PyErr {
    let kind = match error.kind() {
        ErrorKind::BadInput => BAD_INPUT,
        ErrorKind::Refused => "refused",
        ErrorKind::Network => "network",
        ErrorKind::Timeout => "timeout",
        ErrorKind::TaskFailed => "task_failed",
        ErrorKind::Other => "api",
    };
    NativeError::new_err((kind, error.name().to_string(), error.to_string()))
}

fn client_error(error: ClientError) -> PyErr {
    task_error(TaskError::Client(error))
}

fn spec_error(error: SpecError) -> PyErr {
    raise("bad_spec", error)
}

fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| raise("transfer", e))
}

fn task_id(text: &str) -> PyResult<TaskId> {
    text.parse().map(TaskId).map_err(|_| raise("bad_task_id", format!("{text:?} is not a task id (64 hex digits)")))
}

/// A client of one node's API, with the wallet of the key it was opened with.
#[pyclass(frozen)]
struct NativeClient {
    client: Client,
    wallet: Option<Arc<Wallet>>,
}

impl NativeClient {
    fn wallet(&self) -> PyResult<&Arc<Wallet>> {
        self.wallet.as_ref().ok_or_else(|| raise("no_key", "this client was opened without a key; pass key="))
    }

    fn handle(&self, id: &str) -> PyResult<TaskHandle> {
        Ok(TaskHandle::new(self.client.clone(), task_id(id)?))
    }

    fn submit_resolved(&self, py: Python<'_>, resolved: &ResolvedSpec) -> PyResult<String> {
        let wallet = self.wallet()?;
        let task = py.detach(|| ogpu_client::task::submit(wallet, resolved, |_| {})).map_err(task_error)?;
        if resolved.private {
            // Its keys go to its workers as they are chosen, whatever the caller does next.
            drop(task.deliver_keys_in_background(wallet.clone()));
        }
        Ok(task.id().to_string())
    }
}

fn resolve_file(path: &str) -> PyResult<ResolvedSpec> {
    ogpu_client::spec::resolve(Path::new(path)).map_err(spec_error)
}

fn resolve_document(document: &str, base: &str) -> PyResult<ResolvedSpec> {
    let value = serde_json::from_str(document).map_err(|e| raise("bad_spec", format!("the spec is not JSON: {e}")))?;
    ogpu_client::spec::resolve_document(value, Path::new(base), Path::new("the spec")).map_err(spec_error)
}

#[pymethods]
impl NativeClient {
    #[new]
    #[pyo3(signature = (api, key=None, password=""))]
    fn new(py: Python<'_>, api: &str, key: Option<PathBuf>, password: &str) -> PyResult<NativeClient> {
        let client = Client::new(api).map_err(client_error)?;
        let wallet = match key {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| raise("bad_key", format!("reading the key file {}: {e}", path.display())))?;
                let keystore = Keystore::from_json(&text)
                    .map_err(|e| raise("bad_key", format!("{} is not a key file: {e}", path.display())))?;
                let key = keystore
                    .open(password)
                    .map_err(|e| raise("bad_key", format!("cannot open {}: {e}", path.display())))?;
                let wallet = py.detach(|| Wallet::new(key, client.clone())).map_err(|e| task_error(e.into()))?;
                Some(Arc::new(wallet))
            }
        };
        Ok(NativeClient { client, wallet })
    }

    /// The key's address, or `None` for a client without a key.
    #[getter]
    fn address(&self) -> Option<String> {
        self.wallet.as_ref().map(|w| w.address().to_string())
    }

    /// The account (the key's unless another address is given) as JSON.
    #[pyo3(signature = (address=None))]
    fn account(&self, py: Python<'_>, address: Option<&str>) -> PyResult<String> {
        let address: Address = match address {
            Some(text) => text.parse().map_err(|_| raise("bad_address", format!("{text:?} is not an address")))?,
            None => self.wallet()?.address(),
        };
        json(&py.detach(|| self.client.account(&address)).map_err(client_error)?)
    }

    /// The registered providers, as JSON.
    fn providers(&self, py: Python<'_>) -> PyResult<String> {
        json(&py.detach(|| self.client.providers(None)).map_err(client_error)?)
    }

    /// Submits the spec file at `path`; returns the task id.
    fn submit_file(&self, py: Python<'_>, path: &str) -> PyResult<String> {
        self.submit_resolved(py, &resolve_file(path)?)
    }

    /// Submits a spec given as JSON (the shape of a spec file), its paths relative to
    /// `base`; returns the task id.
    fn submit_document(&self, py: Python<'_>, document: &str, base: &str) -> PyResult<String> {
        self.submit_resolved(py, &resolve_document(document, base)?)
    }

    /// The task, its phase and its events, as JSON.
    fn task(&self, py: Python<'_>, id: &str) -> PyResult<String> {
        let handle = self.handle(id)?;
        json(&py.detach(|| handle.detail()).map_err(client_error)?)
    }

    /// Waits for the task to end (at most `timeout` seconds); its outcome as JSON.
    #[pyo3(signature = (id, timeout=None))]
    fn wait(&self, py: Python<'_>, id: &str, timeout: Option<f64>) -> PyResult<String> {
        let handle = self.handle(id)?;
        let timeout = timeout
            .map(|seconds| Duration::try_from_secs_f64(seconds).map_err(|e| raise("bad_timeout", e)))
            .transpose()?;
        json(&py.detach(|| handle.wait(timeout)).map_err(task_error)?)
    }

    /// The task's steps with their metrics, each a JSON object, until it ends.
    fn progress(&self, py: Python<'_>, id: &str) -> PyResult<Lines> {
        let handle = self.handle(id)?;
        let steps = py.detach(|| handle.progress()).map_err(client_error)?;
        let lines = steps.map(|step| step.map(|step| step_json(&step)));
        Ok(Lines { inner: Mutex::new(Box::new(lines)) })
    }

    /// Every kept log entry of the task, as a JSON list.
    fn logs(&self, py: Python<'_>, id: &str) -> PyResult<String> {
        let handle = self.handle(id)?;
        json(&py.detach(|| handle.logs()).map_err(client_error)?)
    }

    /// The task's log entries, each a JSON object, as they come.
    fn follow_logs(&self, py: Python<'_>, id: &str) -> PyResult<Lines> {
        let handle = self.handle(id)?;
        let entries = py.detach(|| handle.follow_logs()).map_err(client_error)?;
        let lines = entries.map(|entry| entry.map(|entry| serde_json::to_string(&entry).unwrap_or_default()));
        Ok(Lines { inner: Mutex::new(Box::new(lines)) })
    }

    /// Downloads the task's result into `out_dir` (a private task's opened with this
    /// client's key); returns the paths written.
    fn result(&self, py: Python<'_>, id: &str, out_dir: PathBuf) -> PyResult<Vec<PathBuf>> {
        let handle = self.handle(id)?;
        let wallet = self.wallet.as_deref();
        py.detach(|| handle.result(&out_dir, wallet)).map_err(task_error)
    }

    /// Raises the task's price cap to `max_price` oGPU (a decimal string).
    fn top_up(&self, py: Python<'_>, id: &str, max_price: &str) -> PyResult<()> {
        let max_price: Amount =
            max_price.parse().map_err(|_| raise("bad_amount", format!("{max_price:?} is not an amount of oGPU")))?;
        let (handle, wallet) = (self.handle(id)?, self.wallet()?);
        py.detach(|| handle.top_up(wallet, max_price)).map_err(task_error)
    }

    fn cancel(&self, py: Python<'_>, id: &str) -> PyResult<()> {
        let (handle, wallet) = (self.handle(id)?, self.wallet()?);
        py.detach(|| handle.cancel(wallet)).map_err(task_error)
    }
}

fn step_json(step: &Step) -> String {
    let mut object = serde_json::Map::new();
    object.insert("step".into(), step.step.into());
    if let Some(total) = step.total {
        object.insert("total".into(), total.into());
    }
    for (name, value) in &step.metrics {
        object.insert(name.clone(), (*value).into());
    }
    serde_json::Value::Object(object).to_string()
}

type LineIterator = Box<dyn Iterator<Item = Result<String, ClientError>> + Send>;

/// An iterator of JSON lines read from the network as Python asks for them.
#[pyclass(frozen)]
struct Lines {
    inner: Mutex<LineIterator>,
}

#[pymethods]
impl Lines {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let next = py.detach(|| self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).next());
        next.transpose().map_err(client_error)
    }
}

/// The names of an ONNX model's graph inputs (those not fed by initializers).
#[pyfunction]
fn onnx_inputs(path: PathBuf) -> PyResult<Vec<String>> {
    let bytes = std::fs::read(&path).map_err(|e| raise("bad_model", format!("{}: {e}", path.display())))?;
    ogpu_client::onnx::input_names(&bytes).map_err(|e| raise("bad_model", format!("{}: {e}", path.display())))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_class::<Lines>()?;
    m.add_function(wrap_pyfunction!(onnx_inputs, m)?)?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    Ok(())
}
