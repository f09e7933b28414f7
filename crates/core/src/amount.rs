//! Money: a count of base units, 10^18 to the oGPU. It cannot go negative and every
//! operation that could overflow or underflow is checked.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::serde_text::serde_via_text;

const DECIMALS: usize = 18;

#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Amount(u128);

/// Parts per ten thousand: fees, slash fractions and probabilities on chain.
pub type BasisPoints = u16;
pub const BPS_DENOMINATOR: u128 = 10_000;

impl Amount {
    pub const ZERO: Amount = Amount(0);
    pub const ONE_OGPU: Amount = Amount(10u128.pow(DECIMALS as u32));

    pub const fn from_base_units(units: u128) -> Amount {
        Amount(units)
    }

    /// `n` whole oGPU, for constants and tests; it fails to compile in a `const` that
    /// overflows. Runtime values use the checked operations.
    pub const fn ogpu(n: u128) -> Amount {
        match n.checked_mul(Self::ONE_OGPU.0) {
            Some(units) => Amount(units),
            None => panic!("Amount::ogpu overflows; use checked arithmetic for runtime values"),
        }
    }

    pub const fn base_units(self) -> u128 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn checked_mul(self, factor: u128) -> Option<Amount> {
        self.0.checked_mul(factor).map(Amount)
    }

    /// `self * numerator / denominator`, rounded down, with a 256-bit intermediate
    /// product; `None` on a zero denominator or a quotient that does not fit.
    pub fn checked_mul_div(self, numerator: u128, denominator: u128) -> Option<Amount> {
        mul_div(self.0, numerator, denominator).map(Amount)
    }

    /// The share `bps / 10_000` of this amount, rounded down.
    pub fn bps(self, bps: BasisPoints) -> Amount {
        self.checked_mul_div(u128::from(bps), BPS_DENOMINATOR).expect("a basis-point share never exceeds the amount")
    }

    pub fn min(self, other: Amount) -> Amount {
        std::cmp::min(self, other)
    }

    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }
}

/// `a * b / d` over the full 256-bit product.
fn mul_div(a: u128, b: u128, d: u128) -> Option<u128> {
    if d == 0 {
        return None;
    }
    if let Some(product) = a.checked_mul(b) {
        return Some(product / d);
    }
    let (high, low) = widening_mul(a, b);
    if high >= d {
        return None;
    }
    // Schoolbook division of (high, low) by d, one bit at a time; `remainder < d` holds
    // before each step, so the quotient fits in 128 bits.
    let (mut remainder, mut quotient) = (high, 0u128);
    for bit in (0..128).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if carry == 1 || remainder >= d {
            remainder = remainder.wrapping_sub(d);
            quotient |= 1;
        }
    }
    Some(quotient)
}

/// The 256-bit product of `a` and `b` as (high, low) halves.
fn widening_mul(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0, b1, b0) = (a >> 64, a & MASK, b >> 64, b & MASK);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let middle = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let low = (p00 & MASK) | (middle << 64);
    let high = p11 + (p01 >> 64) + (p10 >> 64) + (middle >> 64);
    (high, low)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    #[error("an amount is a number of oGPU such as `12.5`; got an empty string")]
    Empty,
    #[error("`{0}` is not a number of oGPU such as `12.5` (digits, at most one dot)")]
    Invalid(String),
    #[error("`{0}` has more than 18 decimals; 1 base unit is 0.000000000000000001 oGPU")]
    TooPrecise(String),
    #[error("`{0}` is too large for an amount")]
    Overflow(String),
}

impl FromStr for Amount {
    type Err = ParseAmountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(ParseAmountError::Empty);
        }
        let invalid = || ParseAmountError::Invalid(text.chars().take(60).collect());
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(invalid()),
            None => (text, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(invalid());
        }
        if fraction.len() > DECIMALS {
            return Err(ParseAmountError::TooPrecise(text.into()));
        }
        let overflow = || ParseAmountError::Overflow(text.chars().take(60).collect());
        let whole: u128 = whole.parse().map_err(|_| overflow())?;
        let scale = 10u128.pow((DECIMALS - fraction.len()) as u32);
        let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| invalid())? };
        whole
            .checked_mul(Amount::ONE_OGPU.0)
            .and_then(|units| units.checked_add(fraction * scale))
            .map(Amount)
            .ok_or_else(overflow)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Amount::ONE_OGPU.0;
        let fraction = self.0 % Amount::ONE_OGPU.0;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:0width$}", width = DECIMALS);
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} oGPU")
    }
}

serde_via_text!(Amount);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_people_amounts() {
        let cases = [("12.5", 12_500_000_000_000_000_000u128), ("0", 0), ("7", 7 * 10u128.pow(18))];
        for (text, units) in cases {
            assert_eq!(text.parse::<Amount>(), Ok(Amount(units)), "{text}");
            assert_eq!(Amount(units).to_string(), text);
        }
        assert_eq!("0.000000000000000001".parse::<Amount>(), Ok(Amount(1)));
        assert_eq!("1.50".parse::<Amount>().unwrap().to_string(), "1.5");
    }

    #[test]
    fn bad_text_gets_a_named_error() {
        assert_eq!("".parse::<Amount>(), Err(ParseAmountError::Empty));
        for bad in ["-1", "1.", ".5", "1.2.3", "1e5", " 1", "abc", "1,5", "+1"] {
            assert!(matches!(bad.parse::<Amount>(), Err(ParseAmountError::Invalid(_))), "{bad}");
        }
        assert!(matches!("0.0000000000000000001".parse::<Amount>(), Err(ParseAmountError::TooPrecise(_))));
        let huge = "9".repeat(40);
        assert!(matches!(huge.parse::<Amount>(), Err(ParseAmountError::Overflow(_))));
    }

    #[test]
    fn arithmetic_is_checked() {
        let max = Amount(u128::MAX);
        assert_eq!(max.checked_add(Amount(1)), None);
        assert_eq!(Amount::ZERO.checked_sub(Amount(1)), None);
        assert_eq!(max.checked_mul(2), None);
        assert_eq!(Amount(10).checked_mul_div(1, 0), None);
        assert_eq!(Amount::ogpu(3).bps(2_500), "0.75".parse().unwrap());
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(units in any::<u128>()) {
            prop_assert_eq!(Amount(units).to_string().parse::<Amount>(), Ok(Amount(units)));
        }

        #[test]
        fn mul_div_is_exact_on_wide_products(a in any::<u128>(), b in any::<u128>()) {
            // (a * b) / b == a whenever b is non-zero, however large the product.
            if b != 0 {
                prop_assert_eq!(Amount(a).checked_mul_div(b, b), Some(Amount(a)));
            }
            let half = a / 2;
            prop_assert_eq!(Amount(half).checked_mul_div(2, 2), Some(Amount(half)));
            prop_assert_eq!(Amount(u128::MAX).checked_mul_div(u128::MAX, u128::MAX - 1), None);
        }

        #[test]
        fn mul_div_matches_wide_arithmetic(units in 0u128..(1u128 << 100), num in 0u128..(1 << 20), den in 1u128..(1 << 20)) {
            let exact = (units as f64) * (num as f64) / (den as f64);
            let got = Amount(units).checked_mul_div(num, den).unwrap().0 as f64;
            prop_assert!((got - exact).abs() <= exact * 1e-9 + 1.0);
        }
    }
}
