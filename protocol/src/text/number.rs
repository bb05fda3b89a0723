//! memcached's number parsing (`safe_strtoul`, `safe_strtol`, `safe_strtoull` in its `util.c`),
//! reproduced exactly, quirks included, on a token that holds no space and no NUL.
//!
//! On the 64-bit Linux memcached runs on, these wrap C's `strtoul`/`strtol`/`strtoull`:
//! - leading C whitespace (`\t \n \v \f \r`, and space) is skipped, then one optional `+`/`-`;
//! - at least one decimal digit is required; a value beyond 64 bits is refused (`ERANGE`);
//! - the digits must be followed by the end of the token *or any C whitespace*, after which
//!   anything goes: `5\tjunk` parses as 5;
//! - `strtoul`/`strtoull` negate a `-` value modulo 2^64, and memcached then refuses any result
//!   that looks negative as a signed number when the token holds a `-` (so `-1` is refused, but
//!   `-0` is 0);
//! - `safe_strtoul` and `safe_strtol` then store the 64-bit result into a 32-bit variable,
//!   keeping the low 32 bits: flags `4294967296` become 0, a byte count `4294967297` becomes 1.

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The shared core of `strtoul`/`strtol`: sign and magnitude, or `None` when memcached's
/// wrapper would refuse the token (no digits, overflow, or junk straight after the digits).
fn sign_and_magnitude(token: &[u8]) -> Option<(bool, u64)> {
    let mut i = 0;
    while i < token.len() && is_c_space(token[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < token.len() && (token[i] == b'+' || token[i] == b'-') {
        negative = token[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < token.len() && token[i].is_ascii_digit() {
        let digit = u64::from(token[i] - b'0');
        match value.checked_mul(10).and_then(|v| v.checked_add(digit)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start || overflow {
        return None;
    }
    if i < token.len() && !is_c_space(token[i]) {
        return None;
    }
    Some((negative, value))
}

/// `safe_strtoull`: an unsigned 64-bit number (CAS unique, incr/decr delta).
pub fn strtoull(token: &[u8]) -> Option<u64> {
    let (negative, magnitude) = sign_and_magnitude(token)?;
    let value = if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    if (value as i64) < 0 && token.contains(&b'-') {
        return None;
    }
    Some(value)
}

/// `safe_strtoul` into memcached's `uint32_t`: parsed as 64 bits, then truncated (flags,
/// verbosity level).
pub(crate) fn strtoul32(token: &[u8]) -> Option<u32> {
    // On LP64 `unsigned long` is 64 bits, so this is strtoull's rule before the truncation.
    strtoull(token).map(|v| v as u32)
}

/// `safe_strtol` into memcached's `int32_t`: parsed as a signed 64-bit number, then truncated
/// (exptime, byte count).
pub(crate) fn strtol32(token: &[u8]) -> Option<i32> {
    let (negative, magnitude) = sign_and_magnitude(token)?;
    let value: i64 = if negative {
        if magnitude > i64::MIN.unsigned_abs() {
            return None;
        }
        (magnitude as i64).wrapping_neg()
    } else {
        i64::try_from(magnitude).ok()?
    };
    Some(value as i32)
}

#[cfg(test)]
mod tests {
    //! Each case below was checked against memcached 1.6.18 through the command that uses the
    //! parser (flags via `set`, byte counts via `set`, deltas via `incr`, CAS via `cas`).
    use super::*;

    #[test]
    fn flags_above_u32_wrap_to_low_bits() {
        assert_eq!(strtoul32(b"4294967295"), Some(u32::MAX));
        assert_eq!(strtoul32(b"4294967296"), Some(0));
        assert_eq!(strtoul32(b"9223372036854775808"), Some(0));
        assert_eq!(strtoul32(b"18446744073709551615"), Some(u32::MAX));
        assert_eq!(strtoul32(b"18446744073709551616"), None);
    }

    #[test]
    fn negative_unsigned_is_refused_except_minus_zero() {
        assert_eq!(strtoul32(b"-1"), None);
        assert_eq!(strtoul32(b"-4294967295"), None);
        assert_eq!(strtoul32(b"-0"), Some(0));
        assert_eq!(strtoull(b"-1"), None);
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull(b"18446744073709551616"), None);
    }

    #[test]
    fn whitespace_before_and_after_digits_is_accepted() {
        assert_eq!(strtoul32(b"\t5"), Some(5));
        assert_eq!(strtoul32(b"5\t"), Some(5));
        assert_eq!(strtoul32(b"5\tjunk"), Some(5));
        assert_eq!(strtoul32(b"5\x0b"), Some(5));
        assert_eq!(strtol32(b"1\r"), Some(1));
        assert_eq!(strtol32(b"+1"), Some(1));
    }

    #[test]
    fn junk_and_empty_are_refused() {
        assert_eq!(strtol32(b""), None);
        assert_eq!(strtol32(b"abc"), None);
        assert_eq!(strtol32(b"1x"), None);
        assert_eq!(strtol32(b"-"), None);
        assert_eq!(strtol32(b"+-1"), None);
        assert_eq!(strtol32(b"0x10"), None);
        assert_eq!(strtol32(b"\t"), None);
    }

    #[test]
    fn signed_byte_counts_truncate_to_i32() {
        assert_eq!(strtol32(b"4294967297"), Some(1));
        assert_eq!(strtol32(b"2147483648"), Some(i32::MIN));
        assert_eq!(strtol32(b"-1"), Some(-1));
        assert_eq!(strtol32(b"9223372036854775807"), Some(-1));
        assert_eq!(strtol32(b"9223372036854775808"), None);
        assert_eq!(strtol32(b"-9223372036854775808"), Some(0));
        assert_eq!(strtol32(b"-9223372036854775809"), None);
    }
}
