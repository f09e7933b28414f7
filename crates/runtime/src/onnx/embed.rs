//! The `sentence-embedding` pipeline: text in, one vector per line out, as
//! sentence-transformers computes it. Each batch of lines is tokenized with the task's
//! `tokenizer.json` and padded to its longest line, run through the model, and the chosen
//! output's token states are averaged over the real (unpadded) tokens, then scaled to unit
//! length unless the task says `normalize=none`. The result is `embeddings.npy`, float32
//! `[lines, hidden]`.

use std::time::Instant;

use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer};

use super::engine::{Engine, PortType, quoted_list};
use super::files;
use super::npy::{Array, DType};
use super::tensor_file::{self, Format};
use crate::{Job, TaskError};

/// The model inputs this pipeline can feed, by name.
const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const TOKEN_TYPE_IDS: &str = "token_type_ids";

/// One tokenized batch: its tokens' attention mask (for pooling) and the model inputs.
struct Batch {
    mask: Vec<Vec<u32>>,
    inputs: Vec<Array>,
}

pub struct Embedding<'a> {
    pub tokenizer: &'a str,
    pub text: &'a str,
    pub normalize: bool,
    pub batch: usize,
    pub format: Format,
}

impl Embedding<'_> {
    pub fn run(&self, model: &dyn Engine, job: &Job<'_>, started: Instant) -> Result<(), TaskError> {
        let tokenizer = self.tokenizer(job)?;
        let text = files::read_input(job.inputs, self.text)?;
        let sentences = sentences(self.text, &text)?;
        let batches = sentences
            .chunks(self.batch)
            .map(|chunk| tokenize(&tokenizer, model, chunk))
            .collect::<Result<Vec<Batch>, TaskError>>()?;
        let (masks, inputs): (Vec<_>, Vec<_>) = batches.into_iter().map(|b| (b.mask, b.inputs)).unzip();
        let results = model.run(inputs, job, started)?;
        let Some(name) = model.outputs().first() else {
            return Err(TaskError::BadInput("pipeline=sentence-embedding needs a model output to pool".into()));
        };
        let mut hidden = None;
        let mut data = Vec::new();
        for (outputs, mask) in results.iter().zip(&masks) {
            let states = outputs.first().ok_or_else(|| TaskError::BadOutput(format!("no output {name:?}")))?;
            let width = check_states(name, states, mask, hidden)?;
            hidden = Some(width);
            let states = states.values::<f32>().unwrap_or_default();
            for (row, mask) in mask.iter().enumerate() {
                let start = row * mask.len() * width;
                for value in pool(&states[start..start + mask.len() * width], mask, width, self.normalize) {
                    data.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        let array = Array { dtype: DType::F32, shape: vec![sentences.len(), hidden.unwrap_or(0)], data };
        let (file, bytes) =
            tensor_file::write(self.format, "embeddings", &array).map_err(|e| TaskError::BadOutput(e.to_string()))?;
        files::write_output(job.output, &file, &bytes)
    }

    /// The task's tokenizer, padding each batch to its longest line (whatever fixed
    /// padding the file asks for) with the file's padding token and side.
    fn tokenizer(&self, job: &Job<'_>) -> Result<Tokenizer, TaskError> {
        let bytes = files::read_input(job.inputs, self.tokenizer)?;
        let mut tokenizer = Tokenizer::from_bytes(&bytes)
            .map_err(|error| TaskError::BadInput(format!("{} is not a tokenizer.json: {error}", self.tokenizer)))?;
        let padding = PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..tokenizer.get_padding().cloned().unwrap_or_default()
        };
        tokenizer.with_padding(Some(padding));
        Ok(tokenizer)
    }
}

/// The lines of the text file, each one sentence.
fn sentences<'a>(file: &str, text: &'a [u8]) -> Result<Vec<&'a str>, TaskError> {
    let text =
        std::str::from_utf8(text).map_err(|error| TaskError::BadInput(format!("{file} is not UTF-8 text: {error}")))?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return Err(TaskError::BadInput(format!("{file} holds no sentences; give one per line")));
    }
    if let Some(blank) = lines.iter().position(|line| line.trim().is_empty()) {
        return Err(TaskError::BadInput(format!("line {} of {file} is blank; give one sentence per line", blank + 1)));
    }
    Ok(lines)
}

fn tokenize(tokenizer: &Tokenizer, model: &dyn Engine, sentences: &[&str]) -> Result<Batch, TaskError> {
    let encodings = tokenizer
        .encode_batch(sentences.to_vec(), true)
        .map_err(|error| TaskError::BadInput(format!("tokenizing: {error}")))?;
    let rows = encodings.len();
    let length = encodings.first().map_or(0, |e| e.len());
    let mut inputs = Vec::new();
    for port in model.inputs() {
        let values: Vec<u32> = match port.name.as_str() {
            INPUT_IDS => encodings.iter().flat_map(|e| e.get_ids().iter().copied()).collect(),
            ATTENTION_MASK => encodings.iter().flat_map(|e| e.get_attention_mask().iter().copied()).collect(),
            TOKEN_TYPE_IDS => encodings.iter().flat_map(|e| e.get_type_ids().iter().copied()).collect(),
            other => {
                return Err(TaskError::Unsupported(format!(
                    "pipeline=sentence-embedding feeds the model inputs {INPUT_IDS}, {ATTENTION_MASK} and \
                     {TOKEN_TYPE_IDS}; this model also wants {other:?}"
                )));
            }
        };
        let shape = [rows, length];
        let array = match port.dtype {
            PortType::Is(DType::I32) => Array::of(&shape, &values.iter().map(|&v| v as i32).collect::<Vec<_>>()),
            _ => Array::of(&shape, &values.iter().map(|&v| i64::from(v)).collect::<Vec<_>>()),
        };
        port.check(array.dtype, &shape).map_err(|wanted| {
            TaskError::BadInput(format!(
                "the tokens make model input {:?} int [{rows}, {length}], but {wanted}",
                port.name
            ))
        })?;
        inputs.push(array);
    }
    if !model.inputs().iter().any(|port| port.name == INPUT_IDS) {
        let names: Vec<String> = model.inputs().iter().map(|port| port.name.clone()).collect();
        return Err(TaskError::Unsupported(format!(
            "pipeline=sentence-embedding needs a model input named {INPUT_IDS}; this model's are {}",
            quoted_list(&names)
        )));
    }
    let mask = encodings.iter().map(|e| e.get_attention_mask().to_vec()).collect();
    Ok(Batch { mask, inputs })
}

/// Checks that `states` is float32 `[rows, tokens, hidden]` for this batch and the same
/// hidden width as the batches before; returns the width.
fn check_states(name: &str, states: &Array, mask: &[Vec<u32>], before: Option<usize>) -> Result<usize, TaskError> {
    let (rows, tokens) = (mask.len(), mask.first().map_or(0, Vec::len));
    match states.shape[..] {
        [r, t, hidden]
            if r == rows && t == tokens && states.dtype == DType::F32 && before.is_none_or(|b| b == hidden) =>
        {
            Ok(hidden)
        }
        ref shape => Err(TaskError::BadInput(format!(
            "model output {name:?} is {} {shape:?} for {rows} lines of {tokens} tokens; pooling needs float32 \
             [lines, tokens, hidden]: pick the token states with output=NAME",
            states.dtype
        ))),
    }
}

/// The mean of one line's token states over its real tokens, in float64 as
/// sentence-transformers' reference does, then made unit length if asked.
fn pool(states: &[f32], mask: &[u32], width: usize, normalize: bool) -> Vec<f32> {
    let mut sum = vec![0f64; width];
    let mut count = 0f64;
    for (token, &real) in states.chunks_exact(width).zip(mask) {
        if real != 0 {
            count += 1.0;
            for (total, &value) in sum.iter_mut().zip(token) {
                *total += f64::from(value);
            }
        }
    }
    let mean: Vec<f64> = sum.iter().map(|total| total / count.max(1e-9)).collect();
    let scale = match normalize {
        true => 1.0 / mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12),
        false => 1.0,
    };
    mean.iter().map(|v| (v * scale) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_the_real_tokens_and_normalizes() {
        let states = [1.0, 2.0, 3.0, 6.0, 100.0, 100.0];
        assert_eq!(pool(&states, &[1, 1, 0], 2, false), [2.0, 4.0]);
        let unit = pool(&states, &[1, 1, 0], 2, true);
        assert!((unit[0] - 1.0 / 5f32.sqrt()).abs() < 1e-7 && (unit[1] - 2.0 / 5f32.sqrt()).abs() < 1e-7);
        assert_eq!(pool(&states, &[0, 0, 0], 2, true), [0.0, 0.0], "nothing to average is zero, not NaN");
    }

    #[test]
    fn each_line_is_a_sentence() {
        assert_eq!(sentences("s.txt", b"one\r\ntwo\n").unwrap(), ["one", "two"]);
        assert!(matches!(sentences("s.txt", b""), Err(TaskError::BadInput(m)) if m.contains("no sentences")));
        assert!(matches!(sentences("s.txt", b"a\n \nb"), Err(TaskError::BadInput(m)) if m.contains("line 2")));
        assert!(matches!(sentences("s.txt", b"\xff"), Err(TaskError::BadInput(m)) if m.contains("UTF-8")));
    }
}
