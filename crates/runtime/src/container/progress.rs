//! A container's progress file. The runtime names it in `OGPU_PROGRESS`; the program
//! appends one JSON object a line, `{"step": 10, "total": 100, "loss": 0.52}`, and the
//! runtime passes each new step on as the train runtime passes its own (`total`, `loss`,
//! `eval_loss` and `eval_accuracy` are read; anything else is the program's business).
//!
//! The file lies in a directory the sandbox writes, so the program chooses what it is: it
//! is opened without following links and read only when it is a plain file, never more
//! than a bounded amount at a time.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Progress;

/// The file's name in the runtime's directory, `/ogpu` in the sandbox.
pub(crate) const FILE: &str = "progress.jsonl";
/// A longer line is no step: it is skipped.
const MAX_LINE: usize = 4096;
/// At most this much is read at each look, so a program writing without end cannot hold
/// the reader.
const MAX_READ: u64 = 1 << 20;
/// The most steps passed on from one look, the newest: each becomes a signed log entry,
/// and a program may append thousands between two looks.
const STEPS_PER_LOOK: usize = 8;
/// The measurements a step may carry, by the names the train runtime gives them.
const METRICS: [&str; 3] = ["loss", "eval_loss", "eval_accuracy"];

/// Where the progress file has been read up to.
pub(crate) struct Tail {
    path: PathBuf,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// Inside a line longer than [`MAX_LINE`], skipped up to its end.
    skipping: bool,
    /// The last step passed on: a step goes on only when it is past it.
    last: Option<u64>,
    /// Whether the program was told once that a line is not a step.
    warned: bool,
}

impl Tail {
    pub(crate) fn new(dir: &Path) -> Tail {
        Tail { path: dir.join(FILE), offset: 0, partial: Vec::new(), skipping: false, last: None, warned: false }
    }

    /// Reads what was appended since the last look and passes the new steps on, at most
    /// [`STEPS_PER_LOOK`] of them, the newest (and, the first time, a log line saying a
    /// line is not a step).
    pub(crate) fn poll(&mut self, report: &(dyn Fn(Progress) + Sync)) {
        let Some(bytes) = self.read_more() else { return };
        let mut steps = std::collections::VecDeque::new();
        for byte in bytes {
            if byte != b'\n' {
                if !self.skipping && self.partial.len() < MAX_LINE {
                    self.partial.push(byte);
                } else {
                    self.skipping = true;
                    self.partial.clear();
                }
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            if std::mem::take(&mut self.skipping) {
                self.complain(report, &format!("a line longer than {MAX_LINE} bytes"));
                continue;
            }
            match step(&line) {
                Ok(Some(Progress::Step { done, total, metrics })) if self.last.is_none_or(|last| done > last) => {
                    self.last = Some(done);
                    if steps.len() == STEPS_PER_LOOK {
                        steps.pop_front();
                    }
                    steps.push_back(Progress::Step { done, total, metrics });
                }
                Ok(_) => {}
                Err(why) => self.complain(report, &why),
            }
        }
        steps.into_iter().for_each(report);
    }

    fn complain(&mut self, report: &(dyn Fn(Progress) + Sync), why: &str) {
        if !std::mem::replace(&mut self.warned, true) {
            report(Progress::Log(format!("ogpu: {FILE}: {why}; lines are {{\"step\": N, \"loss\": x}} (said once)")));
        }
    }

    /// The bytes appended since the last look: none while the file is missing or is
    /// anything but a plain file.
    fn read_more(&mut self) -> Option<Vec<u8>> {
        let opened = File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&self.path);
        let mut file = opened.ok()?;
        let length = file.metadata().ok().filter(|meta| meta.is_file())?.len();
        // Cut shorter by the program: read on from its new end.
        self.offset = self.offset.min(length);
        file.seek(SeekFrom::Start(self.offset)).ok()?;
        let mut bytes = Vec::new();
        file.take(MAX_READ).read_to_end(&mut bytes).ok()?;
        self.offset += bytes.len() as u64;
        Some(bytes)
    }
}

/// The step a line reports; `None` for a blank line.
fn step(line: &[u8]) -> Result<Option<Progress>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("a line is not JSON ({e})"))?;
    let done = value.get("step").and_then(serde_json::Value::as_u64);
    let done = done.ok_or_else(|| "a line has no \"step\" that is a whole number".to_string())?;
    let total = value.get("total").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let metrics = METRICS
        .into_iter()
        .filter_map(|name| Some((name, value.get(name)?.as_f64().filter(|x| x.is_finite())?)))
        .collect();
    Ok(Some(Progress::Step { done, total, metrics }))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;

    fn polled(tail: &mut Tail) -> Vec<Progress> {
        let seen = Mutex::new(Vec::new());
        tail.poll(&|progress| seen.lock().unwrap().push(progress));
        seen.into_inner().unwrap()
    }

    fn append(dir: &Path, text: &str) {
        let mut file = File::options().create(true).append(true).open(dir.join(FILE)).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn steps_are_passed_on_as_their_lines_end_and_only_forwards() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = Tail::new(dir.path());
        assert_eq!(polled(&mut tail), [], "no file yet");
        append(dir.path(), "{\"step\": 1, \"total\": 3, \"loss\": 2.5, \"lr\": 0.1}\n{\"step\": 2, \"lo");
        let step = |done, metrics: Vec<(&'static str, f64)>| Progress::Step { done, total: 3, metrics };
        assert_eq!(polled(&mut tail), [step(1, vec![("loss", 2.5)])]);
        append(dir.path(), "ss\": 1.5, \"total\": 3}\n\n{\"step\": 1, \"total\": 3}\n");
        assert_eq!(polled(&mut tail), [step(2, vec![("loss", 1.5)])], "step 1 again is not news");
        append(dir.path(), "{\"step\": 3, \"total\": 3, \"eval_accuracy\": 0.9, \"eval_loss\": \"NaN\"}\n");
        assert_eq!(polled(&mut tail), [step(3, vec![("eval_accuracy", 0.9)])]);
    }

    /// Review finding: every step became a signed log entry, thousands a look.
    #[test]
    fn a_look_passes_on_only_the_newest_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = Tail::new(dir.path());
        append(dir.path(), &(1..=1000).map(|n| format!("{{\"step\": {n}}}\n")).collect::<String>());
        let done: Vec<u64> = polled(&mut tail)
            .into_iter()
            .map(|p| if let Progress::Step { done, .. } = p { done } else { panic!("{p:?}") })
            .collect();
        assert_eq!(done, (993..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_line_that_is_no_step_is_said_once_and_a_long_one_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = Tail::new(dir.path());
        let long = "x".repeat(MAX_LINE + 10);
        append(dir.path(), &format!("epoch 1\n{{\"loss\": 1}}\n{long}\n{{\"step\": 4}}\n"));
        let seen = polled(&mut tail);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(matches!(&seen[0], Progress::Log(line) if line.contains("not JSON")), "{seen:?}");
        assert_eq!(seen[1], Progress::Step { done: 4, total: 0, metrics: vec![] });
    }

    #[test]
    fn a_link_or_a_fifo_in_its_place_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "{\"step\": 99}\n").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join(FILE)).unwrap();
        let mut tail = Tail::new(dir.path());
        assert_eq!(polled(&mut tail), [], "the link was followed");
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        let fifo = std::ffi::CString::new(dir.path().join(FILE).into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(polled(&mut tail), [], "a FIFO is no progress file (and must not block)");
    }
}
