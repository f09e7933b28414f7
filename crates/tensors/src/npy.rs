//! A small, strict reader and writer of NumPy `.npy` files: the tensor format of the
//! onnx runtime's inputs and outputs, since every client with Python writes it in one call
//! and the header is simple enough to check completely.
//!
//! Accepted: format versions 1.0 and 2.0, little-endian `float32`, `float64`, `int32` and
//! `int64`, C (row-major) order, any rank including scalars. Anything else (big-endian or
//! other types, Fortran order, pickled objects, a header that is not the plain dictionary
//! NumPy writes, data shorter or longer than the shape says) is refused with a message
//! saying what was found, rather than guessed at.

use std::fmt;

const MAGIC: &[u8] = b"\x93NUMPY";
/// The header (and so the data) starts on a multiple of this, as NumPy writes it.
const ALIGN: usize = 64;

/// The element types a `.npy` file may hold here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I32,
    I64,
}

impl DType {
    fn descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
        }
    }

    fn from_descr(descr: &str) -> Option<DType> {
        [DType::F32, DType::F64, DType::I32, DType::I64].into_iter().find(|d| d.descr() == descr)
    }

    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I32 => "int32",
            DType::I64 => "int64",
        })
    }
}

/// A decoded array: its element type, its shape, and its elements in C order as
/// little-endian bytes (the layout both `.npy` and tract's tensors use).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Array {
    /// An array of `shape` holding `values`, which must number the shape's product.
    pub fn of<T: Element>(shape: &[usize], values: &[T]) -> Array {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        let mut data = Vec::with_capacity(values.len() * T::DTYPE.size());
        for value in values {
            value.put(&mut data);
        }
        Array { dtype: T::DTYPE, shape: shape.to_vec(), data }
    }

    /// The elements, when they are of type `T`.
    pub fn values<T: Element>(&self) -> Option<Vec<T>> {
        (self.dtype == T::DTYPE).then(|| self.data.chunks_exact(T::DTYPE.size()).map(T::from_le).collect())
    }

    /// The bytes of one row: one index along the first axis.
    fn row_bytes(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>() * self.dtype.size()
    }

    /// Rows `start..end` along the first axis (which the caller knows is that long).
    pub fn rows(&self, start: usize, end: usize) -> Array {
        let row = self.row_bytes();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Array { dtype: self.dtype, shape, data: self.data[start * row..end * row].to_vec() }
    }

    /// `parts` joined along the first axis, when they agree in type and every other axis.
    pub fn join_rows(parts: &[Array]) -> Option<Array> {
        let first = parts.first()?;
        let rest = first.shape.get(1..)?;
        if parts.iter().any(|p| p.dtype != first.dtype || p.shape.get(1..) != Some(rest)) {
            return None;
        }
        let mut shape = first.shape.clone();
        shape[0] = parts.iter().map(|p| p.shape[0]).sum();
        Some(Array { dtype: first.dtype, shape, data: parts.iter().flat_map(|p| p.data.iter().copied()).collect() })
    }
}

/// The Rust types of the element types.
pub trait Element: Copy {
    const DTYPE: DType;
    /// Appends the little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($($ty:ty => $dtype:ident),*) => {$(
        impl Element for $ty {
            const DTYPE: DType = DType::$dtype;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_le(bytes: &[u8]) -> $ty {
                // `values` hands over chunks of exactly the element's size.
                <$ty>::from_le_bytes(bytes.try_into().unwrap_or_default())
            }
        }
    )*};
}

element!(f32 => F32, f64 => F64, i32 => I32, i64 => I64);

/// Why bytes are not a `.npy` file this reader accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NpyError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(message.into()))
}

/// Decodes a whole `.npy` file.
pub fn read(bytes: &[u8]) -> Result<Array, NpyError> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return fail("not a .npy file (it does not start with \\x93NUMPY)");
    };
    let (length_size, rest) = match rest {
        [1, 0, rest @ ..] => (2, rest),
        [2, 0, rest @ ..] => (4, rest),
        [major, minor, ..] => {
            return fail(format!(".npy format version {major}.{minor} is not supported (1.0 or 2.0)"));
        }
        _ => return fail("the .npy file ends inside its preamble"),
    };
    let Some((length, rest)) = rest.split_at_checked(length_size) else {
        return fail("the .npy file ends inside its preamble");
    };
    let header_len = length.iter().rev().fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let Some((header, data)) = rest.split_at_checked(header_len) else {
        return fail(format!("the .npy header says it is {header_len} bytes, but the file ends before that"));
    };
    let header = std::str::from_utf8(header).or_else(|_| fail("the .npy header is not text"))?;
    let (dtype, shape) = parse_header(header)?;
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let expected = count.and_then(|n| n.checked_mul(dtype.size()));
    match expected {
        Some(expected) if expected == data.len() => Ok(Array { dtype, shape, data: data.to_vec() }),
        Some(expected) => fail(format!(
            "a {dtype} array of shape {shape:?} takes {expected} bytes, but the .npy file holds {} after its header",
            data.len()
        )),
        None => fail(format!("the .npy shape {shape:?} is too large")),
    }
}

/// Encodes `array` as a `.npy` file, version 1.0 unless the header needs 2.0.
pub fn write(array: &Array) -> Vec<u8> {
    let dims: Vec<String> = array.shape.iter().map(ToString::to_string).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", array.dtype.descr());
    // Version 1.0 stores the header length in 16 bits; 2.0, for longer headers, in 32.
    let v1_prefix = MAGIC.len() + 2 + 2;
    let v1 = (v1_prefix + header.len() + 1).next_multiple_of(ALIGN) - v1_prefix <= usize::from(u16::MAX);
    let prefix = if v1 { v1_prefix } else { v1_prefix + 2 };
    let unpadded = prefix + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(ALIGN) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(prefix + header.len() + array.data.len());
    bytes.extend_from_slice(MAGIC);
    if v1 {
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        // A header over 4 GiB would need a shape of hundreds of millions of dimensions.
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&array.data);
    bytes
}

/// Parses the header dictionary: exactly the keys `descr`, `fortran_order` and `shape`,
/// in any order, as Python literals.
fn parse_header(header: &str) -> Result<(DType, Vec<usize>), NpyError> {
    let mut p = Parser { rest: header.trim_end_matches([' ', '\n']) };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect('{')?;
    while !p.eat('}') {
        let key = p.string()?;
        p.expect(':')?;
        match key {
            "descr" if descr.is_none() => descr = Some(p.string()?),
            "fortran_order" if fortran.is_none() => fortran = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            _ => return fail(format!("the .npy header has an unexpected or repeated key {key:?}")),
        }
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    if !p.rest.is_empty() {
        return fail(format!("the .npy header has {:?} after its dictionary", p.rest));
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return fail("the .npy header lacks one of descr, fortran_order and shape");
    };
    let Some(dtype) = DType::from_descr(descr) else {
        return fail(format!(
            ".npy element type {descr:?} is not supported (little-endian float32, float64, int32 or int64: \
             '<f4', '<f8', '<i4', '<i8')"
        ));
    };
    if fortran {
        return fail("the .npy array is in Fortran order; save it in C order (numpy.ascontiguousarray)");
    }
    Ok((dtype, shape))
}

/// A cursor over the header text: just enough of Python's literal syntax for a `.npy`
/// header.
struct Parser<'a> {
    rest: &'a str,
}

impl<'a> Parser<'a> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start_matches(' ');
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_spaces();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), NpyError> {
        if self.eat(c) { Ok(()) } else { self.unexpected(&format!("{c:?}")) }
    }

    fn unexpected<T>(&self, wanted: &str) -> Result<T, NpyError> {
        let found: String = self.rest.chars().take(20).collect();
        fail(format!("the .npy header is malformed: expected {wanted} at {found:?}"))
    }

    fn string(&mut self) -> Result<&'a str, NpyError> {
        self.skip_spaces();
        let Some(quote) = self.rest.chars().next().filter(|&c| c == '\'' || c == '"') else {
            return self.unexpected("a quoted string");
        };
        let body = &self.rest[1..];
        let Some(end) = body.find(quote) else { return self.unexpected("a closed string") };
        self.rest = &body[end + 1..];
        Ok(&body[..end])
    }

    fn boolean(&mut self) -> Result<bool, NpyError> {
        self.skip_spaces();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(value);
            }
        }
        self.unexpected("True or False")
    }

    fn tuple(&mut self) -> Result<Vec<usize>, NpyError> {
        self.expect('(')?;
        let mut dims = Vec::new();
        while !self.eat(')') {
            self.skip_spaces();
            let digits = self.rest.len() - self.rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let Ok(dim) = self.rest[..digits].parse::<usize>() else {
                return self.unexpected("a dimension");
            };
            self.rest = &self.rest[digits..];
            dims.push(dim);
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    fn check_refused(header: &str, data: &[u8], wanted: &str) {
        let error = read(&header_file(header, data)).unwrap_err();
        assert!(error.0.contains(wanted), "{header:?}: {error}");
    }

    #[test]
    fn what_numpy_writes_is_read() {
        // numpy.save of np.arange(6, dtype=np.float32).reshape(2, 3), byte for byte.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let padded = format!("{header}{}\n", " ".repeat(128 - 10 - header.len() - 1));
        let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let array = read(&header_file(&padded, &data)).unwrap();
        assert_eq!(array, Array { dtype: DType::F32, shape: vec![2, 3], data });
    }

    #[test]
    fn writing_then_reading_gives_the_array_back_with_an_aligned_header() {
        for (dtype, shape) in
            [(DType::F32, vec![2, 3]), (DType::I64, vec![4]), (DType::F64, vec![]), (DType::I32, vec![0, 5])]
        {
            let count: usize = shape.iter().product();
            let array = Array { dtype, shape, data: (0..count * dtype.size()).map(|i| i as u8).collect() };
            let bytes = write(&array);
            assert_eq!((bytes.len() - array.data.len()) % ALIGN, 0);
            assert_eq!(read(&bytes).unwrap(), array);
        }
        let one = write(&Array { dtype: DType::I64, shape: vec![4], data: vec![0; 32] });
        assert!(String::from_utf8_lossy(&one).contains("'shape': (4,)"), "a 1-tuple keeps its comma");
    }

    #[test]
    fn large_headers_use_version_2() {
        let shape = vec![1; 30_000];
        let bytes = write(&Array { dtype: DType::F32, shape: shape.clone(), data: vec![0; 4] });
        assert_eq!(bytes[6..8], [2, 0]);
        assert_eq!(read(&bytes).unwrap().shape, shape);
    }

    #[test]
    fn keys_may_come_in_any_order_and_quotes_of_either_kind() {
        let array = read(&header_file("{\"shape\": (1,), \"fortran_order\": False, \"descr\": \"<i8\"}\n", &[0; 8]));
        assert_eq!(array.unwrap().shape, [1]);
    }

    #[test]
    fn anything_unexpected_is_refused_with_what_was_found() {
        let ok =
            |descr: &str, shape: &str| format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        check_refused(&ok(">f4", "(1,)"), &[0; 4], "'<f4'");
        check_refused(&ok("<f2", "(1,)"), &[0; 2], "\"<f2\" is not supported");
        check_refused(&ok("|O", "(1,)"), &[0; 8], "\"|O\"");
        check_refused(&ok("<f4", "(2,)"), &[0; 4], "takes 8 bytes, but the .npy file holds 4");
        check_refused(&ok("<f4", "(1,)"), &[0; 5], "holds 5");
        check_refused(&ok("<f4", "(-1,)"), &[], "expected a dimension");
        check_refused(&ok("<f8", "(4294967296, 4294967296)"), &[], "too large");
        check_refused("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", &[0; 4], "Fortran order");
        check_refused("{'descr': '<f4', 'shape': (1,), }", &[0; 4], "lacks one of");
        check_refused("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", &[0; 4], "repeated");
        check_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", &[0; 4], "\"x\"");
        check_refused("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", &[0; 4], "after its dictionary");
        check_refused("{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}", &[0; 4], "True or False");
        check_refused("{'descr: '<f4'}", &[], "malformed");
    }

    #[test]
    fn broken_preambles_are_refused() {
        let message = |bytes: &[u8]| read(bytes).unwrap_err().0;
        assert!(message(b"PK\x03\x04").contains("not a .npy file"));
        assert!(message(b"\x93NUMPY\x03\x00\x10\x00").contains("version 3.0"));
        assert!(message(b"\x93NUMPY\x01").contains("preamble"));
        assert!(message(b"\x93NUMPY\x01\x00\x10").contains("preamble"));
        assert!(message(b"\x93NUMPY\x01\x00\x10\x00{}").contains("ends before"));
        assert!(message(b"\x93NUMPY\x01\x00\x02\x00\xff\xfe").contains("not text"));
    }
}
