//! Lowercase hex, for hashes, key files and transactions in JSON.

pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// The bytes of `text`, or `None` when it is not an even number of hex digits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    // from_str_radix alone would take a leading '+'.
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_bad_digits() {
        assert_eq!(super::encode(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(super::decode("00abff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(super::decode("ABFF"), Some(vec![0xab, 0xff]));
        for bad in ["0", "zz", "é1", "+1"] {
            assert_eq!(super::decode(bad), None, "{bad}");
        }
    }
}
