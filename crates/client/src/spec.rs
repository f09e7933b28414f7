//! Task specs as people write them. `program` and each input name a file, by a path
//! relative to the spec file (or absolute), or a blob some store already holds, by
//! `blake3:` and its hash. `limits` may be left out in part or whole: each kind has
//! defaults ([`default_limits`]), and `fuel` belongs to `wasm` alone. Resolving a spec
//! hashes its files and gives the spec the chain takes (hashes only, every limit stated),
//! with the files to upload before submitting it. `private = true` (the default for
//! `train`) has the files sealed at submit, readable only by parties to the task (see
//! docs/private-data.md); such a spec names every file by path.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use ogpu_core::spec::{Limits, Market, TaskSpec, WorkloadKind};
use ogpu_core::{BlobHash, Hash};
use serde_json::Value;

/// What a blob named by hash is prefixed with in a spec file.
pub const HASH_PREFIX: &str = "blake3:";

/// What a spec of `kind` gets for each limit it leaves out. Only WebAssembly counts fuel;
/// the chain's spec carries a fuel of 1 for the other kinds, which their runtimes ignore.
pub fn default_limits(kind: WorkloadKind) -> Limits {
    match kind {
        WorkloadKind::Wasm => Limits { fuel: 100_000_000_000, memory_mb: 256, timeout_s: 600 },
        WorkloadKind::Onnx => Limits { fuel: 1, memory_mb: 2_048, timeout_s: 600 },
        WorkloadKind::Train | WorkloadKind::Container => Limits { fuel: 1, memory_mb: 4_096, timeout_s: 3_600 },
    }
}

/// Whether an auctioned spec of `kind` that does not say is private: training data, the
/// models trained on it and a client's own code are what it most wants kept to itself. A
/// pool job never is: nobody knows who will race it until it is posted.
pub fn private_by_default(kind: WorkloadKind) -> bool {
    matches!(kind, WorkloadKind::Train | WorkloadKind::Container)
}

/// A spec with its files hashed.
#[derive(Debug, Clone)]
pub struct ResolvedSpec {
    /// The spec the chain takes: every file named by its hash (of its plaintext, for a
    /// private spec: submitting seals the files and names the sealed copies).
    pub spec: TaskSpec,
    /// The local files it names, by hash: what must be in a store before the task runs.
    pub files: BTreeMap<BlobHash, PathBuf>,
    /// Whether its files are sealed at submit, for the task's parties alone.
    pub private: bool,
}

/// Why a spec could not be resolved; each names the spec, and the field where one is to
/// blame.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file itself could not be read.
    #[error("cannot read the spec {path}: {source}")]
    Read {
        /// The spec file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// A field names a file that cannot be hashed: missing, not a regular file, a link
    /// loop or unreadable.
    #[error("{spec}: {field} names {file}: {reason}")]
    File {
        /// The spec file.
        spec: PathBuf,
        /// The field, such as `workload.program` or `workload.inputs."numbers.txt"`.
        field: String,
        /// The file it names, joined to the spec's directory.
        file: PathBuf,
        /// What is wrong with the file.
        reason: String,
    },
    /// A field is empty, or `blake3:` followed by something other than a hash.
    #[error("{spec}: {field} is {value:?}; name a file by its path, or a stored blob as blake3:<64 hex digits>")]
    Reference {
        /// The spec file.
        spec: PathBuf,
        /// The field, such as `workload.program`.
        field: String,
        /// What the field says.
        value: String,
    },
    /// A field breaks the chain's rules for specs (a price of 0, a limit it does not take).
    #[error("{spec} is not a valid task spec: {field}: {problem}")]
    Rule {
        /// The spec file.
        spec: PathBuf,
        /// The field, such as `market.max_price`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The spec does not parse as TOML or JSON, or does not have a task spec's shape.
    #[error("{spec} is not a valid task spec: {reason}")]
    Invalid {
        /// The spec file.
        spec: PathBuf,
        /// What is wrong, as the parser or the spec's validation put it.
        reason: String,
    },
}

impl SpecError {
    /// The field of the spec that is wrong, when one is: `workload.program`,
    /// `market.max_price`, ...
    pub fn field(&self) -> Option<&str> {
        match self {
            SpecError::File { field, .. } | SpecError::Reference { field, .. } | SpecError::Rule { field, .. } => {
                Some(field)
            }
            SpecError::Read { .. } | SpecError::Invalid { .. } => None,
        }
    }
}

/// Reads the spec at `path` (JSON when it ends in `.json`, TOML otherwise) and hashes the
/// files it names.
pub fn resolve(path: &Path) -> Result<ResolvedSpec, SpecError> {
    let invalid = |reason: String| SpecError::Invalid { spec: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
    let document: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?
    } else {
        let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        serde_json::to_value(table).map_err(|e| invalid(e.to_string()))?
    };
    resolve_document(document, path.parent().unwrap_or(Path::new("")), path)
}

/// Resolves a spec already parsed into a JSON document (the shape of a spec file), naming
/// files relative to `base`; errors call the spec `origin`.
pub fn resolve_document(mut document: Value, base: &Path, origin: &Path) -> Result<ResolvedSpec, SpecError> {
    let invalid = |reason: String| SpecError::Invalid { spec: origin.to_path_buf(), reason };
    let rule =
        |field: &str, problem: String| SpecError::Rule { spec: origin.to_path_buf(), field: field.into(), problem };
    let private = take_private(&mut document).map_err(|problem| rule("private", problem))?;
    let mut files = BTreeMap::new();
    let mut resolve_field = |field: String, value: &mut Value| -> Result<(), SpecError> {
        // A value that is not text is left for the spec's own parsing to refuse.
        let Some(text) = value.as_str() else { return Ok(()) };
        if private == Some(true) && text.starts_with(HASH_PREFIX) {
            let problem = "a private task's files are sealed at submit: name this one by its path".to_string();
            return Err(SpecError::Rule { spec: origin.to_path_buf(), field, problem });
        }
        let hash = reference(origin, base, &field, text, &mut files)?;
        *value = Value::String(hash.to_string());
        Ok(())
    };
    if let Some(workload) = document.get_mut("workload") {
        fill_limits(workload).map_err(|problem| rule("workload.limits.fuel", problem))?;
        if let Some(program) = workload.get_mut("program") {
            resolve_field("workload.program".into(), program)?;
        }
        if let Some(Value::Object(inputs)) = workload.get_mut("inputs") {
            for (name, value) in inputs.iter_mut() {
                resolve_field(format!("workload.inputs.{name:?}"), value)?;
            }
        }
    }
    let spec: TaskSpec = serde_json::from_value(document).map_err(|e| invalid(e.to_string()))?;
    spec.validate().map_err(|e| rule(e.field, e.problem))?;
    let pooled = matches!(spec.market, Market::Pool { .. });
    if pooled && private == Some(true) {
        return Err(rule(
            "private",
            "a pool job cannot be private: nobody knows who will race it until it is posted".into(),
        ));
    }
    let private = private.unwrap_or_else(|| !pooled && private_by_default(spec.workload.kind));
    if private && spec.workload.blobs().any(|blob| !files.contains_key(&blob)) {
        // Only a kind private by default gets here with a `blake3:` reference.
        let problem = format!(
            "{} tasks are private unless the spec says `private = false`, and a private task's files are \
             sealed at submit: name every file by its path",
            format!("{:?}", spec.workload.kind).to_lowercase()
        );
        return Err(rule("private", problem));
    }
    Ok(ResolvedSpec { spec, files, private })
}

/// Takes the spec's `private` out of the document (the chain's spec carries the client's
/// reader key there instead, filled in at submit): `Some` of what it says, `None` if it
/// does not say.
fn take_private(document: &mut Value) -> Result<Option<bool>, String> {
    match document.as_object_mut().and_then(|fields| fields.remove("private")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(private)) => Ok(Some(private)),
        Some(other) => Err(format!("is {other}; write true or false")),
    }
}

/// States every limit the workload leaves out, by its kind's defaults; refuses `fuel` for
/// kinds that do not count it. A workload without a known kind is left for the spec's own
/// parsing to refuse.
fn fill_limits(workload: &mut Value) -> Result<(), String> {
    let Some(kind) = workload.get("kind").and_then(|k| serde_json::from_value::<WorkloadKind>(k.clone()).ok()) else {
        return Ok(());
    };
    let Some(fields) = workload.as_object_mut() else { return Ok(()) };
    let limits = fields.entry("limits").or_insert_with(|| Value::Object(Default::default()));
    let Some(limits) = limits.as_object_mut() else { return Ok(()) };
    if kind != WorkloadKind::Wasm && limits.contains_key("fuel") {
        return Err("only wasm tasks count fuel; leave it out".into());
    }
    let defaults = default_limits(kind);
    let stated = [
        ("fuel", Value::from(defaults.fuel)),
        ("memory_mb", Value::from(defaults.memory_mb)),
        ("timeout_s", Value::from(defaults.timeout_s)),
    ];
    for (key, value) in stated {
        limits.entry(key).or_insert(value);
    }
    Ok(())
}

/// The hash `text` names: the hash after `blake3:`, or the hash of the file at the path.
fn reference(
    spec: &Path,
    base: &Path,
    field: &str,
    text: &str,
    files: &mut BTreeMap<BlobHash, PathBuf>,
) -> Result<BlobHash, SpecError> {
    if let Some(hex) = text.strip_prefix(HASH_PREFIX) {
        let hash = hex.parse::<Hash>().map_err(|_| SpecError::Reference {
            spec: spec.to_path_buf(),
            field: field.to_string(),
            value: text.to_string(),
        })?;
        return Ok(BlobHash(hash));
    }
    if text.is_empty() {
        return Err(SpecError::Reference { spec: spec.to_path_buf(), field: field.to_string(), value: text.into() });
    }
    let file = base.join(text);
    let failed = |reason: String| SpecError::File {
        spec: spec.to_path_buf(),
        field: field.to_string(),
        file: file.clone(),
        reason,
    };
    // Following every link first: a loop or a dangling link is an error here, by name.
    let real = file.canonicalize().map_err(|e| failed(e.to_string()))?;
    if !real.is_file() {
        return Err(failed("not a regular file".into()));
    }
    let hash = hash_file(&real).map_err(|e| failed(e.to_string()))?;
    files.insert(hash, real);
    Ok(hash)
}

/// The blake3 hash of a file's bytes, read as a stream.
pub fn hash_file(path: &Path) -> std::io::Result<BlobHash> {
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(BlobHash(Hash(*hasher.finalize().as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
name = "sum"
deadline_blocks = 10
[workload]
kind = "wasm"
program = "PROGRAM"
inputs = { "numbers.txt" = "INPUT" }
limits = { fuel = 1000, memory_mb = 16, timeout_s = 10 }
[market]
kind = "auction"
max_price = "0.01"
bid_window = 2
"#;

    /// A directory with `sum.wat`, `data/numbers.txt` and a spec naming them as given.
    fn written(program: &str, input: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sum.wat"), "(module)").unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/numbers.txt"), "1\n2\n").unwrap();
        let spec = dir.path().join("sum.toml");
        std::fs::write(&spec, SPEC.replace("PROGRAM", program).replace("INPUT", input)).unwrap();
        (dir, spec)
    }

    #[test]
    fn paths_become_hashes_and_files_to_upload() {
        let (dir, spec) = written("sum.wat", "data/numbers.txt");
        let resolved = resolve(&spec).unwrap();
        let program = BlobHash(Hash::of_bytes(b"(module)"));
        let numbers = BlobHash(Hash::of_bytes(b"1\n2\n"));
        assert_eq!(resolved.spec.workload.program, program);
        assert_eq!(resolved.spec.workload.inputs["numbers.txt"], numbers);
        let real = |p: &str| dir.path().join(p).canonicalize().unwrap();
        assert_eq!(resolved.files, BTreeMap::from([(program, real("sum.wat")), (numbers, real("data/numbers.txt"))]));
    }

    #[test]
    fn a_blake3_reference_names_a_stored_blob_and_uploads_nothing() {
        let hash = Hash([7; 32]);
        let (_dir, spec) = written(&format!("blake3:{hash}"), "data/numbers.txt");
        let resolved = resolve(&spec).unwrap();
        assert_eq!(resolved.spec.workload.program, BlobHash(hash));
        assert_eq!(resolved.files.len(), 1, "only the input is a local file");
    }

    #[test]
    fn bad_references_are_refused_naming_the_field_and_the_file() {
        let refused = |program: &str| resolve(&written(program, "data/numbers.txt").1).unwrap_err().to_string();
        let missing = refused("nothing.wat");
        assert!(missing.contains("workload.program names") && missing.contains("nothing.wat"), "{missing}");
        let directory = refused("data");
        assert!(directory.contains("not a regular file"), "{directory}");
        let bad_hash = refused("blake3:1234");
        assert!(bad_hash.contains("workload.program is \"blake3:1234\""), "{bad_hash}");
        assert!(refused("").contains("name a file by its path"));
    }

    #[test]
    fn limits_left_out_take_the_kinds_defaults_and_fuel_is_for_wasm_alone() {
        let (dir, spec) = written("sum.wat", "data/numbers.txt");
        let text = std::fs::read_to_string(&spec).unwrap();
        let without =
            text.replace("limits = { fuel = 1000, memory_mb = 16, timeout_s = 10 }", "limits = { memory_mb = 16 }");
        std::fs::write(&spec, &without).unwrap();
        let limits = resolve(&spec).unwrap().spec.workload.limits;
        let wasm = default_limits(WorkloadKind::Wasm);
        assert_eq!(limits, Limits { memory_mb: 16, ..wasm });

        let onnx = dir.path().join("onnx.toml");
        std::fs::write(
            &onnx,
            without.replace("kind = \"wasm\"", "kind = \"onnx\"").replace("limits = { memory_mb = 16 }\n", ""),
        )
        .unwrap();
        assert_eq!(resolve(&onnx).unwrap().spec.workload.limits, default_limits(WorkloadKind::Onnx));
        std::fs::write(&onnx, text.replace("kind = \"wasm\"", "kind = \"onnx\"")).unwrap();
        let fuel = resolve(&onnx).unwrap_err().to_string();
        assert!(fuel.contains("only wasm tasks count fuel"), "{fuel}");

        std::fs::write(&spec, text.replace("memory_mb = 16", "memory_mib = 16")).unwrap();
        let unknown = resolve(&spec).unwrap_err().to_string();
        assert!(
            unknown.contains("memory_mib") && unknown.contains("memory_mb"),
            "names the key and the allowed ones: {unknown}"
        );
    }

    #[test]
    fn training_is_private_unless_the_spec_says_and_a_private_spec_names_files_by_path() {
        let (dir, spec) = written("sum.wat", "data/numbers.txt");
        let text = std::fs::read_to_string(&spec).unwrap();
        assert!(!resolve(&spec).unwrap().private, "wasm is public by default");
        let write = |text: String| {
            std::fs::write(&spec, text).unwrap();
            resolve(&spec)
        };
        assert!(write(text.replace("deadline_blocks", "private = true\ndeadline_blocks")).unwrap().private);

        let train = text.replace("kind = \"wasm\"", "kind = \"train\"").replace("fuel = 1000, ", "");
        assert!(write(train.clone()).unwrap().private, "train is private by default");
        assert!(!write(train.replace("deadline_blocks", "private = false\ndeadline_blocks")).unwrap().private);

        // A stored blob cannot be sealed at submit: refused by name, with the way out.
        let stored = format!("blake3:{}", Hash([7; 32]));
        let by_hash = write(train.replace("\"sum.wat\"", &format!("{stored:?}"))).unwrap_err().to_string();
        assert!(by_hash.contains("private") && by_hash.contains("private = false"), "{by_hash}");
        let said = text
            .replace("\"sum.wat\"", &format!("{stored:?}"))
            .replace("deadline_blocks", "private = true\ndeadline_blocks");
        let error = write(said).unwrap_err();
        assert_eq!(error.field(), Some("workload.program"), "{error}");
        let not_bool = write(text.replace("deadline_blocks", "private = \"yes\"\ndeadline_blocks")).unwrap_err();
        assert_eq!(not_bool.field(), Some("private"), "{not_bool}");

        // A pool job is never private: by default, and when a spec asks, by name.
        let pool = format!("[market]\nkind = \"pool\"\npool = \"{}\"\n", Hash([9; 32]));
        let pooled = train[..train.find("[market]").unwrap()].to_string() + &pool;
        assert!(!write(pooled.clone()).unwrap().private, "a train pool job is public");
        let asked = write(pooled.replace("deadline_blocks", "private = true\ndeadline_blocks")).unwrap_err();
        assert!(asked.field() == Some("private") && asked.to_string().contains("pool job"), "{asked}");
        drop(dir);
    }

    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let (dir, spec) = written("loop/a", "data/numbers.txt");
        std::fs::create_dir(dir.path().join("loop")).unwrap();
        std::os::unix::fs::symlink("b", dir.path().join("loop/a")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("loop/b")).unwrap();
        let error = resolve(&spec).unwrap_err().to_string();
        assert!(error.contains("loop/a") && error.contains("symbolic links"), "{error}");
    }

    #[test]
    fn a_spec_that_does_not_parse_names_the_spec_and_the_problem() {
        let (_dir, spec) = written("sum.wat", "data/numbers.txt");
        let text = std::fs::read_to_string(&spec).unwrap().replace("deadline_blocks", "deadline_blockz");
        std::fs::write(&spec, text).unwrap();
        let error = resolve(&spec).unwrap_err().to_string();
        assert!(error.contains("sum.toml is not a valid task spec") && error.contains("deadline_blockz"), "{error}");
    }
}
