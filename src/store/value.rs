//! The store's value arithmetic for incr/decr, as memcached's `do_add_delta` does it. The store
//! owns it (rather than borrowing a wire format's number parser): an item's data is not a
//! protocol token, it is read up to its first NUL as C's `strtoull` would.

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses an item's value for incr/decr as memcached's `do_add_delta` does: `safe_strtoull` on
/// the data up to its first NUL. Leading C whitespace and one sign are allowed; at least one
/// digit; the digits must end the data or be followed by C whitespace; a value over 64 bits is
/// refused; a result that looks negative as a signed number is refused when the data holds a
/// `-` (`-1` is refused, `-0` is 0).
pub fn parse_u64(value: &[u8]) -> Option<u64> {
    let value = &value[..value.iter().position(|&b| b == 0).unwrap_or(value.len())];
    let mut i = 0;
    while i < value.len() && is_c_space(value[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < value.len() && (value[i] == b'+' || value[i] == b'-') {
        negative = value[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut magnitude: u64 = 0;
    while i < value.len() && value[i].is_ascii_digit() {
        let digit = u64::from(value[i] - b'0');
        magnitude = magnitude.checked_mul(10)?.checked_add(digit)?;
        i += 1;
    }
    if i == digits_start || (i < value.len() && !is_c_space(value[i])) {
        return None;
    }
    let n = if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    // memcached refuses a result that looks negative when the data holds a `-` anywhere.
    if (n as i64) < 0 && value.contains(&b'-') {
        return None;
    }
    Some(n)
}

/// The new value of an incr (wrapping at 2^64, as memcached) or a decr (stopping at 0).
pub fn apply_delta(old: u64, incr: bool, delta: u64) -> u64 {
    if incr {
        old.wrapping_add(delta)
    } else {
        old.saturating_sub(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_u64_follows_safe_strtoull() {
        assert_eq!(parse_u64(b"10"), Some(10));
        assert_eq!(parse_u64(b"9 "), Some(9));
        assert_eq!(parse_u64(b" 12"), Some(12));
        assert_eq!(parse_u64(b"+5"), Some(5));
        assert_eq!(parse_u64(b"12 34"), Some(12));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"000000000000000000000000001"), Some(1));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"-0"), Some(0));
        assert_eq!(parse_u64(b"12abc"), None);
        assert_eq!(parse_u64(b"abc"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"  "), None);
        assert_eq!(parse_u64(b"7\0xyz"), Some(7));
    }

    #[test]
    fn incr_wraps_and_decr_stops_at_zero() {
        assert_eq!(apply_delta(u64::MAX, true, 2), 1);
        assert_eq!(apply_delta(5, false, 9), 0);
        assert_eq!(apply_delta(5, false, 2), 3);
    }
}
