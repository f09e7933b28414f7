//! What a client checks of an ONNX model before paying to run it: the names of its
//! inputs, read from the model's protobuf without an ONNX library (the fields are stable
//! since ONNX's first release: `ModelProto.graph` = 7, `GraphProto.initializer` = 5 and
//! `.input` = 11, `TensorProto.name` = 8, `ValueInfoProto.name` = 1).

/// Why a model's input names could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OnnxError {
    /// The bytes are not valid protobuf, or a name is not UTF-8; says what was wrong.
    #[error("not an ONNX model: {0}")]
    Malformed(&'static str),
    /// The model has no graph field (an empty file reads this way).
    #[error("the model has no graph")]
    NoGraph,
}

/// The graph inputs a task must feed: every declared input that no initializer fills.
pub fn input_names(model: &[u8]) -> Result<Vec<String>, OnnxError> {
    let graph = fields(model)?.into_iter().find(|(number, _)| *number == 7).ok_or(OnnxError::NoGraph)?.1;
    let mut inputs = Vec::new();
    let mut initialized = Vec::new();
    for (number, value) in fields(graph)? {
        match number {
            5 => initialized.extend(name(value, 8)?),
            11 => inputs.extend(name(value, 1)?),
            _ => {}
        }
    }
    inputs.retain(|input| !initialized.contains(input));
    Ok(inputs)
}

/// The text of field `number` in a message, if it has one.
fn name(message: &[u8], number: u64) -> Result<Option<String>, OnnxError> {
    match fields(message)?.into_iter().find(|(n, _)| *n == number) {
        None => Ok(None),
        Some((_, bytes)) => {
            String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| OnnxError::Malformed("a name is not UTF-8"))
        }
    }
}

/// The length-delimited fields of a message, by number; other wire types are skipped.
fn fields(mut message: &[u8]) -> Result<Vec<(u64, &[u8])>, OnnxError> {
    let mut found = Vec::new();
    while !message.is_empty() {
        let key = varint(&mut message)?;
        let skip = match key & 7 {
            0 => {
                varint(&mut message)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let length =
                    usize::try_from(varint(&mut message)?).map_err(|_| OnnxError::Malformed("a length overflows"))?;
                let value = message.get(..length).ok_or(OnnxError::Malformed("a field runs past the end"))?;
                found.push((key >> 3, value));
                length
            }
            _ => return Err(OnnxError::Malformed("an unknown wire type")),
        };
        message = message.get(skip..).ok_or(OnnxError::Malformed("a field runs past the end"))?;
    }
    Ok(found)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, OnnxError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(OnnxError::Malformed("a number runs past the end"))?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(OnnxError::Malformed("a number is longer than 10 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digits classifier the examples run (a copy of shared/data/onnx/digits_mlp.onnx).
    const DIGITS: &[u8] = include_bytes!("../../../examples/digits-infer/digits_mlp.onnx");

    #[test]
    fn the_digits_model_takes_one_input_named_input() {
        assert_eq!(input_names(DIGITS), Ok(vec!["input".to_string()]));
    }

    #[test]
    fn anything_else_is_refused_without_a_panic() {
        assert_eq!(input_names(b""), Err(OnnxError::NoGraph));
        assert!(input_names(b"\xff\xff\xff").is_err());
        for cut in [1, 10, 100, 1000, DIGITS.len() - 1] {
            let _ = input_names(&DIGITS[..cut]);
        }
        // A graph field whose length points past the end.
        assert_eq!(input_names(&[0x3a, 0x7f, 0x00]), Err(OnnxError::Malformed("a field runs past the end")));
    }
}
