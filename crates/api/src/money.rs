//! Money on the wire is a decimal string (`"19.99"`); inside, an `i64` of
//! micro-units (1 unit = 1,000,000), never a float.

/// Micro-units per currency unit.
pub const MICROS: i64 = 1_000_000;
const FRACTION_DIGITS: usize = 6;

/// Parses `"12"`, `"12.5"`, `"-0.000001"` into micro-units. At most 6
/// fractional digits and 12 integer digits; no exponent, no spaces.
pub fn parse_amount(text: &str) -> Result<i64, String> {
    let invalid = || format!("`{text}` is not a decimal amount like \"12.50\"");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    if digits.contains('.') && fraction.is_empty() {
        return Err(invalid());
    }
    if fraction.len() > FRACTION_DIGITS {
        return Err(format!(
            "`{text}` has more than {FRACTION_DIGITS} decimal places"
        ));
    }
    if whole.trim_start_matches('0').len() > 12 {
        return Err(format!("`{text}` is too large"));
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| invalid())?;
    let micros = whole * MICROS + fraction;
    Ok(if negative { -micros } else { micros })
}

/// Formats micro-units with at least `min_decimals` places and no trailing zeros beyond them.
pub fn format_amount(micros: i64, min_decimals: usize) -> String {
    Amount::new(micros, min_decimals).as_str().to_owned()
}

/// An amount written out on the stack, for hot paths that format amounts
/// into a larger text without allocating for each.
#[derive(Clone, Copy)]
pub struct Amount {
    buf: [u8; 32],
    start: usize,
}

impl Amount {
    pub fn new(micros: i64, min_decimals: usize) -> Self {
        let abs = micros.unsigned_abs();
        let mut fraction = abs % MICROS as u64;
        // Drop trailing zero digits beyond the minimum.
        let mut digits = FRACTION_DIGITS;
        let min = min_decimals.min(FRACTION_DIGITS);
        while digits > min && fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        // Written right to left; 32 bytes hold any i64.
        let mut buf = [0u8; 32];
        let mut pos = buf.len();
        let mut push = |byte: u8| {
            pos -= 1;
            buf[pos] = byte;
        };
        for _ in 0..digits {
            push(b'0' + (fraction % 10) as u8);
            fraction /= 10;
        }
        if digits > 0 {
            push(b'.');
        }
        let mut whole = abs / MICROS as u64;
        loop {
            push(b'0' + (whole % 10) as u8);
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        if micros < 0 {
            push(b'-');
        }
        Amount { buf, start: pos }
    }

    /// The decimal text as bytes, for writers that need no `str` (and so
    /// no UTF-8 check).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '.' and '-' are ever written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

impl std::fmt::Debug for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly() {
        for (text, micros) in [
            ("0", 0),
            ("12", 12_000_000),
            ("12.5", 12_500_000),
            ("0.000001", 1),
            ("-3.25", -3_250_000),
            ("999999999999.999999", 999_999_999_999_999_999),
        ] {
            assert_eq!(parse_amount(text), Ok(micros), "{text}");
        }
        assert_eq!(format_amount(12_500_000, 2), "12.50");
        assert_eq!(format_amount(0, 2), "0.00");
        assert_eq!(format_amount(0, 0), "0");
        assert_eq!(format_amount(-1, 2), "-0.000001");
        assert_eq!(format_amount(1_230_000, 0), "1.23");
        assert_eq!(format_amount(-7_000_000, 0), "-7");
        assert_eq!(format_amount(5_000_010, 9), "5.000010");
        assert_eq!(format_amount(1, 2), "0.000001");
        assert_eq!(format_amount(-3_250_000, 2), "-3.25");
        assert_eq!(format_amount(7_000_000, 0), "7");
        assert_eq!(format_amount(i64::MIN, 2), "-9223372036854.775808");
        assert_eq!(format_amount(i64::MAX, 0), "9223372036854.775807");
        assert_eq!(format_amount(10_000_000, 1), "10.0");
        assert_eq!(Amount::new(-2_500_000, 2).to_string(), "-2.50");
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1e3",
            "1,5",
            " 1",
            "1.0000001",
            "abc",
            "1000000000000",
            "+1",
            "--1",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }
}
