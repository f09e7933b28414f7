//! The task's arguments, read as the declaration of how to feed the model and what to
//! deliver (the convention is described in the module documentation of `onnx`).

use super::tensor_file::Format;
use crate::TaskError;

/// At most this many rows or sentences per model run: a bound on the memory one batch
/// takes, whatever the task asks.
pub const MAX_BATCH: usize = 4096;
const DEFAULT_BATCH: usize = 32;

/// What the arguments declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub pipeline: Pipeline,
    /// What runs the model. Part of the result: engines agree only within float tolerance.
    pub engine: EngineChoice,
    /// Rows (or sentences) per model run. Part of the result, not a tuning knob: batch
    /// shapes decide padding and which kernels run, so it is fixed by the task.
    pub batch: usize,
    /// Model outputs to deliver, in the order given; empty means the pipeline's default.
    pub outputs: Vec<String>,
    /// How output tensors are written.
    pub format: Format,
}

/// `engine=` and `device=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// tract on the CPU (the default): the reference every verifier can run.
    Tract,
    /// onnxruntime, on the CPU or with its CUDA execution provider.
    Ort { cuda: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pipeline {
    /// `.npy` tensors in, `.npy` tensors out.
    Tensors {
        /// (model input name, input file); no name binds the model's only input.
        inputs: Vec<(Option<String>, String)>,
    },
    /// Text in, one pooled embedding per line out.
    SentenceEmbedding {
        tokenizer: String,
        text: String,
        /// Whether each embedding is scaled to unit length.
        normalize: bool,
    },
}

fn bad(message: String) -> TaskError {
    TaskError::BadInput(message)
}

impl Task {
    pub fn parse(args: &[String]) -> Result<Task, TaskError> {
        let mut pipeline = None;
        let (mut batch, mut inputs, mut outputs) = (None, Vec::new(), Vec::new());
        let (mut tokenizer, mut text, mut pooling, mut normalize) = (None, None, None, None);
        let (mut engine, mut device, mut format) = (None, None, None);
        for arg in args {
            let Some((key, value)) = arg.split_once('=') else {
                return Err(bad(format!("argument {arg:?} is not of the form key=value")));
            };
            if value.is_empty() {
                return Err(bad(format!("argument {arg:?} has no value")));
            }
            let once = |slot: &mut Option<String>| match slot.replace(value.to_string()) {
                None => Ok(()),
                Some(_) => Err(bad(format!("argument {key} is given twice"))),
            };
            match key {
                "pipeline" => once(&mut pipeline)?,
                "batch" => once(&mut batch)?,
                "tokenizer" => once(&mut tokenizer)?,
                "text" => once(&mut text)?,
                "pooling" => once(&mut pooling)?,
                "normalize" => once(&mut normalize)?,
                "engine" => once(&mut engine)?,
                "device" => once(&mut device)?,
                "format" => once(&mut format)?,
                "output" => outputs.push(value.to_string()),
                // Input file names cannot hold ':', so the last one separates the two.
                "input" => inputs.push(match value.rsplit_once(':') {
                    Some((name, file)) => (Some(name.to_string()), file.to_string()),
                    None => (None, value.to_string()),
                }),
                _ => return Err(bad(format!("unknown argument {key:?} (see the onnx runtime's documentation)"))),
            }
        }
        let batch = match batch {
            None => DEFAULT_BATCH,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_BATCH).contains(&n) => n,
                _ => return Err(bad(format!("batch={text} must be a whole number from 1 to {MAX_BATCH}"))),
            },
        };
        let engine = match (engine.as_deref().unwrap_or("tract"), device.as_deref().unwrap_or("cpu")) {
            ("tract", "cpu") => EngineChoice::Tract,
            ("tract", "cuda") => return Err(bad("device=cuda needs engine=ort: tract runs on the CPU".into())),
            ("ort", "cpu") => EngineChoice::Ort { cuda: false },
            ("ort", "cuda") => EngineChoice::Ort { cuda: true },
            ("tract" | "ort", other) => return Err(bad(format!("device={other} is not a device (cpu or cuda)"))),
            (other, _) => return Err(bad(format!("engine={other} is not an engine (tract or ort)"))),
        };
        let unused = |what: &str, present: bool, pipeline: &str| match present {
            true => Err(bad(format!("argument {what} has no meaning for pipeline={pipeline}"))),
            false => Ok(()),
        };
        let pipeline = match pipeline.as_deref().unwrap_or("tensors") {
            "tensors" => {
                unused("tokenizer", tokenizer.is_some(), "tensors")?;
                unused("text", text.is_some(), "tensors")?;
                unused("pooling", pooling.is_some(), "tensors")?;
                unused("normalize", normalize.is_some(), "tensors")?;
                if inputs.is_empty() {
                    return Err(bad("pipeline=tensors needs at least one input=NAME:FILE argument".into()));
                }
                Pipeline::Tensors { inputs }
            }
            "sentence-embedding" => {
                unused("input", !inputs.is_empty(), "sentence-embedding")?;
                let required = |slot: Option<String>, key: &str| {
                    slot.ok_or_else(|| bad(format!("pipeline=sentence-embedding needs a {key}=FILE argument")))
                };
                if let Some(other) = pooling.filter(|p| p != "mean") {
                    return Err(bad(format!("pooling={other} is not supported (mean)")));
                }
                let normalize = match normalize.as_deref() {
                    None | Some("l2") => true,
                    Some("none") => false,
                    Some(other) => return Err(bad(format!("normalize={other} is not supported (l2 or none)"))),
                };
                if outputs.len() > 1 {
                    return Err(bad("pipeline=sentence-embedding pools one model output; give output= once".into()));
                }
                Pipeline::SentenceEmbedding {
                    tokenizer: required(tokenizer, "tokenizer")?,
                    text: required(text, "text")?,
                    normalize,
                }
            }
            other => {
                return Err(bad(format!("pipeline={other} is unknown (tensors or sentence-embedding)")));
            }
        };
        let format = match format.as_deref().map(|text| (text, Format::parse(text))) {
            None => Format::default(),
            Some((_, Some(format))) => format,
            Some((other, None)) => return Err(bad(format!("format={other} is not a format (npy or safetensors)"))),
        };
        Ok(Task { pipeline, engine, batch, outputs, format })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Task, TaskError> {
        Task::parse(&args.iter().map(ToString::to_string).collect::<Vec<_>>())
    }

    fn refused(args: &[&str], wanted: &str) {
        match parse(args) {
            Err(TaskError::BadInput(message)) => assert!(message.contains(wanted), "{args:?}: {message}"),
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn tensors_is_the_default_pipeline() {
        let task = parse(&["input=pixels.npy", "input=mask:m.npy", "output=label", "output=probabilities"]).unwrap();
        let inputs = vec![(None, "pixels.npy".into()), (Some("mask".into()), "m.npy".into())];
        assert_eq!(task.pipeline, Pipeline::Tensors { inputs });
        assert_eq!((task.batch, task.outputs), (32, vec!["label".to_string(), "probabilities".to_string()]));
        // Model input names may hold ':' themselves (as TensorFlow exports do).
        let task = parse(&["input=input:0:x.npy", "batch=7"]).unwrap();
        assert_eq!(task.pipeline, Pipeline::Tensors { inputs: vec![(Some("input:0".into()), "x.npy".into())] });
        assert_eq!(task.batch, 7);
        assert_eq!(task.engine, EngineChoice::Tract);
    }

    #[test]
    fn onnxruntime_runs_on_the_cpu_or_with_cuda() {
        let on = |extra: &[&str]| parse(&[&["input=x.npy"], extra].concat()).unwrap().engine;
        assert_eq!(on(&["engine=ort"]), EngineChoice::Ort { cuda: false });
        assert_eq!(on(&["engine=ort", "device=cuda"]), EngineChoice::Ort { cuda: true });
        assert_eq!(on(&["engine=tract", "device=cpu"]), EngineChoice::Tract);
    }

    #[test]
    fn sentence_embedding_needs_a_tokenizer_and_text() {
        let task = parse(&["pipeline=sentence-embedding", "tokenizer=t.json", "text=s.txt", "pooling=mean"]).unwrap();
        let pipeline =
            Pipeline::SentenceEmbedding { tokenizer: "t.json".into(), text: "s.txt".into(), normalize: true };
        assert_eq!(task.pipeline, pipeline);
        let raw = parse(&["pipeline=sentence-embedding", "tokenizer=t.json", "text=s.txt", "normalize=none"]).unwrap();
        assert!(matches!(raw.pipeline, Pipeline::SentenceEmbedding { normalize: false, .. }));
        refused(&["pipeline=sentence-embedding", "text=s.txt"], "tokenizer=FILE");
        refused(&["pipeline=sentence-embedding", "tokenizer=t.json"], "text=FILE");
    }

    #[test]
    fn mistakes_are_named() {
        refused(&[], "needs at least one input");
        refused(&["input"], "key=value");
        refused(&["input="], "no value");
        refused(&["input=a.npy", "batch=0"], "from 1 to 4096");
        refused(&["input=a.npy", "batch=4097"], "from 1 to 4096");
        refused(&["input=a.npy", "batch=x"], "whole number");
        refused(&["input=a.npy", "batch=2", "batch=3"], "given twice");
        refused(&["input=a.npy", "threads=2"], "unknown argument \"threads\"");
        refused(&["input=a.npy", "engine=onnx"], "engine=onnx is not an engine");
        refused(&["input=a.npy", "device=tpu"], "device=tpu is not a device");
        refused(&["input=a.npy", "device=cuda"], "device=cuda needs engine=ort");
        refused(&["input=a.npy", "format=csv"], "format=csv is not a format");
        refused(&["input=a.npy", "text=s.txt"], "no meaning for pipeline=tensors");
        refused(&["pipeline=generate"], "pipeline=generate is unknown");
        let embed = ["pipeline=sentence-embedding", "tokenizer=t.json", "text=s.txt"];
        refused(&[&embed[..], &["pooling=max"]].concat(), "pooling=max");
        refused(&[&embed[..], &["normalize=l1"]].concat(), "normalize=l1");
        refused(&[&embed[..], &["input=a.npy"]].concat(), "no meaning for pipeline=sentence-embedding");
        refused(&[&embed[..], &["output=a", "output=b"]].concat(), "give output= once");
    }
}
