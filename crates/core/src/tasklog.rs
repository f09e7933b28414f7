//! Progress and log lines of a running task, signed by the provider that runs it.
//!
//! Providers post them to a node's API while they work, and the API streams them to the
//! task's client. They are not consensus state: nothing on chain depends on them, and a
//! client believes a line because its provider signed it, not because a node relayed it;
//! so nodes serve entries unchanged and clients check the signatures themselves.
//!
//! The signature covers the entry's borsh encoding under its own domain. The task id is
//! the hash of a transaction that names its chain, so an entry belongs to one task on one
//! chain; `(provider, seq)` names an entry, so a retried post is recognised.

use borsh::BorshSerialize;
use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SecretKey, Signature, SignatureError};
use crate::hash::Hash;
use crate::ids::TaskId;

/// Limits on an entry, so that a node can hold many and a client can show each.
pub mod limits {
    /// Bytes of one log line or failure reason.
    pub const LINE_BYTES: usize = 4 * 1024;
    /// Metrics in one step.
    pub const METRICS: usize = 16;
    /// Bytes of a stream name or a metric name.
    pub const NAME_BYTES: usize = 64;
}

#[derive(Debug, Clone, PartialEq, BorshSerialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    pub task: TaskId,
    pub provider: PublicKey,
    /// This provider's entries for this task, counted from 0.
    pub seq: u64,
    /// The provider's wall clock; nobody checks it.
    pub time_ms: u64,
    pub body: LogBody,
}

#[derive(Debug, Clone, PartialEq, BorshSerialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogBody {
    /// A line of output: `stdout` or `stderr` of the program, `agent` of the provider.
    Log {
        stream: String,
        line: String,
    },
    /// Progress through batches or training steps, with metrics such as loss or accuracy.
    Step {
        step: u64,
        total: Option<u64>,
        #[borsh(serialize_with = "metric_bits")]
        #[serde(with = "metric_text")]
        metrics: Vec<(String, f64)>,
    },
    Started,
    /// The output hash the provider computed; the chain's verdict is what counts.
    Finished {
        output: Hash,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedLogEntry {
    pub entry: LogEntry,
    pub signature: Signature,
}

/// What makes an entry too big to keep or show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogEntryError {
    #[error("{field} is {len} bytes; at most {max} are allowed")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("a step carries at most {max} metrics; this one has {count}")]
    TooManyMetrics { count: usize, max: usize },
    #[error("metric {name:?} is not a finite number")]
    NotFinite { name: String },
}

fn at_most(field: &'static str, text: &str, max: usize) -> Result<(), LogEntryError> {
    if text.len() > max { Err(LogEntryError::TooLong { field, len: text.len(), max }) } else { Ok(()) }
}

fn validate_metrics(metrics: &[(String, f64)]) -> Result<(), LogEntryError> {
    if metrics.len() > limits::METRICS {
        return Err(LogEntryError::TooManyMetrics { count: metrics.len(), max: limits::METRICS });
    }
    for (name, value) in metrics {
        at_most("metric name", name, limits::NAME_BYTES)?;
        if !value.is_finite() {
            return Err(LogEntryError::NotFinite { name: name.clone() });
        }
    }
    Ok(())
}

/// The bytes a provider signs: the entry, domain separated.
fn signing_bytes(entry: &LogEntry) -> Vec<u8> {
    let mut bytes = b"ogpu/task-log/v1".to_vec();
    BorshSerialize::serialize(entry, &mut bytes).expect("writing to a Vec cannot fail");
    bytes
}

impl LogEntry {
    pub fn sign(key: &SecretKey, task: TaskId, seq: u64, time_ms: u64, body: LogBody) -> SignedLogEntry {
        let entry = LogEntry { task, provider: key.public(), seq, time_ms, body };
        let signature = key.sign(&signing_bytes(&entry));
        SignedLogEntry { entry, signature }
    }

    /// Checks the size limits (and that metrics are numbers), which the signature does not.
    pub fn validate(&self) -> Result<(), LogEntryError> {
        match &self.body {
            LogBody::Log { stream, line } => {
                at_most("stream", stream, limits::NAME_BYTES)?;
                at_most("line", line, limits::LINE_BYTES)
            }
            LogBody::Step { metrics, .. } => validate_metrics(metrics),
            LogBody::Failed { reason } => at_most("reason", reason, limits::LINE_BYTES),
            LogBody::Started | LogBody::Finished { .. } => Ok(()),
        }
    }
}

impl SignedLogEntry {
    /// Whether `entry.provider` signed exactly this entry.
    pub fn verify(&self) -> Result<(), SignatureError> {
        self.entry.provider.verify(&signing_bytes(&self.entry), &self.signature)
    }
}

/// Checks every entry's signature, in one batch when all verify; otherwise names the
/// first that does not.
pub fn verify_all(entries: &[SignedLogEntry]) -> Result<(), (usize, SignatureError)> {
    let messages: Vec<Vec<u8>> = entries.iter().map(|e| signing_bytes(&e.entry)).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = entries.iter().map(|e| e.signature).collect();
    let keys: Vec<PublicKey> = entries.iter().map(|e| e.entry.provider).collect();
    if crate::crypto::verify_batch(&refs, &signatures, &keys).is_ok() {
        return Ok(());
    }
    for (index, (entry, message)) in entries.iter().zip(&messages).enumerate() {
        entry.entry.provider.verify(message, &entry.signature).map_err(|error| (index, error))?;
    }
    Ok(())
}

/// Borsh refuses to encode NaN, and signing must not fail on what `validate` would refuse
/// anyway, so the signed form of a metric value is its IEEE 754 bits.
fn metric_bits<W: borsh::io::Write>(metrics: &[(String, f64)], writer: &mut W) -> borsh::io::Result<()> {
    let bits: Vec<(&str, u64)> = metrics.iter().map(|(name, value)| (name.as_str(), value.to_bits())).collect();
    BorshSerialize::serialize(&bits, writer)
}

/// JSON carries metric values as decimal strings: serde_json's default float parser may
/// land one unit in the last place away from the value written, which would break the
/// signature, while Rust's float formatting and parsing round-trip exactly (as do
/// JavaScript's and Python's).
mod metric_text {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Plain decimals where they read well, exponents for the very small and very large.
    fn text(value: f64) -> String {
        let magnitude = value.abs();
        if magnitude != 0.0 && !(1e-6..1e16).contains(&magnitude) { format!("{value:e}") } else { value.to_string() }
    }

    pub fn serialize<S: Serializer>(metrics: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(metrics.iter().map(|(name, value)| (name, text(*value))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
        let pairs = Vec::<(String, String)>::deserialize(d)?;
        pairs
            .into_iter()
            .map(|(name, value)| match value.parse() {
                Ok(number) => Ok((name, number)),
                Err(_) => Err(D::Error::custom(format!("metric {name:?}: {value:?} is not a number"))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A named change to make to a value.
    type Edit<T> = (&'static str, fn(&mut T));

    fn provider() -> SecretKey {
        SecretKey::from_name("log-provider")
    }

    fn task() -> TaskId {
        TaskId(Hash::of_bytes(b"task"))
    }

    fn step(metrics: Vec<(&str, f64)>) -> LogBody {
        let metrics = metrics.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        LogBody::Step { step: 3, total: Some(10), metrics }
    }

    fn bodies() -> Vec<LogBody> {
        vec![
            LogBody::Started,
            LogBody::Log { stream: "stdout".into(), line: "epoch 1".into() },
            step(vec![("loss", 0.1 + 0.2), ("lr", 3e-7), ("tokens", 2e17), ("zero", -0.0), ("tiny", 5e-324)]),
            LogBody::Finished { output: Hash::of_bytes(b"out") },
            LogBody::Failed { reason: "out of memory".into() },
        ]
    }

    #[test]
    fn every_kind_of_entry_survives_json_and_still_verifies() {
        for (seq, body) in bodies().into_iter().enumerate() {
            let signed = LogEntry::sign(&provider(), task(), seq as u64, 1_000, body);
            assert_eq!(signed.verify(), Ok(()));
            assert_eq!(signed.entry.validate(), Ok(()));
            let json = serde_json::to_string(&signed).unwrap();
            let back: SignedLogEntry = serde_json::from_str(&json).unwrap();
            assert_eq!(back, signed, "{json}");
            assert_eq!(back.verify(), Ok(()), "{json}");
        }
    }

    #[test]
    fn the_json_form_reads_well() {
        let signed = LogEntry::sign(&provider(), task(), 7, 1_000, step(vec![("loss", 0.25), ("lr", 3e-7)]));
        let value = serde_json::to_value(&signed).unwrap();
        assert_eq!(
            value["entry"]["body"],
            serde_json::json!({"kind": "step", "step": 3, "total": 10, "metrics": [["loss", "0.25"], ["lr", "3e-7"]]})
        );
        assert_eq!(value["entry"]["task"], task().to_string());
        assert_eq!(value["entry"]["provider"], provider().public().to_string());
        assert_eq!(value["signature"], signed.signature.to_string());
    }

    #[test]
    fn changing_any_field_breaks_the_signature() {
        let signed = LogEntry::sign(&provider(), task(), 2, 1_000, step(vec![("loss", 0.5)]));
        let edits: [Edit<LogEntry>; 5] = [
            ("task", |e| e.task = TaskId(Hash::of_bytes(b"other"))),
            ("seq", |e| e.seq += 1),
            ("time", |e| e.time_ms += 1),
            ("body", |e| e.body = LogBody::Started),
            ("metric", |e| e.body = step(vec![("loss", f64::from_bits(0.5f64.to_bits() + 1))])),
        ];
        for (what, edit) in edits {
            let mut changed = signed.clone();
            edit(&mut changed.entry);
            assert_eq!(changed.verify(), Err(SignatureError::Invalid), "{what}");
        }
    }

    #[test]
    fn an_entry_claimed_for_another_key_does_not_verify() {
        let mut signed = LogEntry::sign(&provider(), task(), 0, 1_000, LogBody::Started);
        signed.entry.provider = SecretKey::from_name("someone else").public();
        assert_eq!(signed.verify(), Err(SignatureError::Invalid));
        let mut garbage_key = signed.clone();
        garbage_key.entry.provider = PublicKey([0xff; 32]);
        assert!(garbage_key.verify().is_err());
    }

    #[test]
    fn a_batch_names_its_first_forged_entry() {
        let mut entries: Vec<_> =
            (0..5).map(|seq| LogEntry::sign(&provider(), task(), seq, 1_000, LogBody::Started)).collect();
        assert_eq!(verify_all(&entries), Ok(()));
        entries[3].entry.seq = 99;
        entries[4].signature.0[0] ^= 1;
        assert_eq!(verify_all(&entries), Err((3, SignatureError::Invalid)));
    }

    #[test]
    fn oversize_or_non_numeric_entries_are_refused() {
        let line = |stream: &str, len| LogBody::Log { stream: stream.into(), line: "x".repeat(len) };
        let many = (0..=limits::METRICS).map(|i| (format!("m{i}"), 1.0)).collect();
        let cases = [
            (line("stdout", limits::LINE_BYTES + 1), LogEntryError::TooLong { field: "line", len: 4097, max: 4096 }),
            (line(&"s".repeat(65), 1), LogEntryError::TooLong { field: "stream", len: 65, max: 64 }),
            (
                LogBody::Failed { reason: "x".repeat(5_000) },
                LogEntryError::TooLong { field: "reason", len: 5_000, max: 4096 },
            ),
            (
                LogBody::Step { step: 1, total: None, metrics: many },
                LogEntryError::TooManyMetrics { count: 17, max: 16 },
            ),
            (step(vec![(&"n".repeat(65), 1.0)]), LogEntryError::TooLong { field: "metric name", len: 65, max: 64 }),
            (step(vec![("loss", f64::NAN)]), LogEntryError::NotFinite { name: "loss".into() }),
            (step(vec![("loss", f64::INFINITY)]), LogEntryError::NotFinite { name: "loss".into() }),
        ];
        for (body, expected) in cases {
            let signed = LogEntry::sign(&provider(), task(), 0, 0, body);
            assert_eq!(signed.entry.validate(), Err(expected));
        }
        let largest = LogEntry::sign(&provider(), task(), 0, 0, line(&"s".repeat(64), limits::LINE_BYTES));
        assert_eq!(largest.entry.validate(), Ok(()));
    }

    #[test]
    fn malformed_json_is_refused() {
        let signed =
            serde_json::to_value(LogEntry::sign(&provider(), task(), 0, 0, step(vec![("loss", 1.5)]))).unwrap();
        let edits: [Edit<serde_json::Value>; 5] = [
            ("a metric as a JSON number", |v| v["entry"]["body"]["metrics"][0][1] = serde_json::json!(1.5)),
            ("a metric that is no number", |v| v["entry"]["body"]["metrics"][0][1] = "fast".into()),
            ("an unknown kind", |v| v["entry"]["body"]["kind"] = "progress".into()),
            ("an unknown field", |v| v["entry"]["colour"] = "red".into()),
            ("a short signature", |v| v["signature"] = "abcd".into()),
        ];
        for (what, edit) in edits {
            let mut value = signed.clone();
            edit(&mut value);
            assert!(serde_json::from_value::<SignedLogEntry>(value).is_err(), "{what}");
        }
    }
}
