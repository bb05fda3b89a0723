//! memcached's own base64 (`base64.c`, after Jouni Malinen's), reproduced with its quirks,
//! without allocating.
//!
//! Decoding skips bytes outside the alphabet (`A-Za-z0-9+/=`), requires the counted bytes to be
//! a non-zero multiple of 4, and stops after the first group of 4 that holds a `=`: one `=`
//! drops one byte, two drop two, three or four make the whole key undecodable. What follows
//! such a group is ignored. Encoding is standard, with `=` padding.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The value of one base64 byte; `=` counts as 0, as in memcached's table.
fn value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'=' => Some(0),
        _ => None,
    }
}

/// How many bytes `src` decodes to, or `None` when memcached's `base64_decode` returns 0 (its
/// failure value). Decoding into `out` (when given) at the same time; `out` must hold
/// `src.len() / 4 * 3` bytes.
pub(super) fn decode(src: &[u8], mut out: Option<&mut [u8]>) -> Option<usize> {
    let count = src.iter().filter(|&&b| value(b).is_some()).count();
    if count == 0 || count % 4 != 0 {
        return None;
    }
    let mut block = [0u8; 4];
    let mut filled = 0;
    let mut pad = 0;
    let mut len = 0;
    for &b in src {
        let Some(v) = value(b) else { continue };
        if b == b'=' {
            pad += 1;
        }
        block[filled] = v;
        filled += 1;
        if filled < 4 {
            continue;
        }
        filled = 0;
        let bytes = [
            (block[0] << 2) | (block[1] >> 4),
            (block[1] << 4) | (block[2] >> 2),
            (block[2] << 6) | block[3],
        ];
        if let Some(out) = out.as_deref_mut() {
            out[len..len + 3].copy_from_slice(&bytes);
        }
        len += 3;
        match pad {
            0 => {}
            1 | 2 => return Some(len - pad),
            _ => return None,
        }
    }
    Some(len)
}

/// Appends the base64 form of `src` (standard alphabet, `=` padding).
pub(super) fn encode(src: &[u8], out: &mut Vec<u8>) {
    let mut chunks = src.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => out.extend_from_slice(&[
            ALPHABET[usize::from(a >> 2)],
            ALPHABET[usize::from((a & 3) << 4)],
            b'=',
            b'=',
        ]),
        [a, b] => out.extend_from_slice(&[
            ALPHABET[usize::from(a >> 2)],
            ALPHABET[usize::from(((a & 3) << 4) | (b >> 4))],
            ALPHABET[usize::from((b & 15) << 2)],
            b'=',
        ]),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(src: &[u8]) -> Option<Vec<u8>> {
        let mut buf = vec![0; src.len() / 4 * 3 + 3];
        let len = decode(src, Some(&mut buf))?;
        buf.truncate(len);
        Some(buf)
    }

    #[test]
    fn decodes_like_memcached() {
        // Each case checked against memcached 1.6.18 with `mg <key> b k`.
        assert_eq!(decoded(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(decoded(b"Zm-9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(decoded(b"Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(decoded(b"Zg==Zm9v").as_deref(), Some(&b"f"[..]));
        assert_eq!(decoded(b"Zm8=").as_deref(), Some(&b"fo"[..]));
        assert_eq!(decoded(b"Zm=9v"), None);
        assert_eq!(decoded(b"=Zm9v"), None);
        assert_eq!(decoded(b"Z==="), None);
        assert_eq!(decoded(b"===="), None);
        assert_eq!(decoded(b"foo"), None);
        assert_eq!(decoded(b"!!!!"), None);
        assert_eq!(decode(b"Zm9vYmFy", None), Some(6));
    }

    #[test]
    fn encodes_with_padding() {
        for (raw, b64) in [
            (&b"foo"[..], &b"Zm9v"[..]),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"\x00\xff\x10 x", b"AP8QIHg="),
        ] {
            let mut out = Vec::new();
            encode(raw, &mut out);
            assert_eq!(out, b64);
            assert_eq!(decoded(b64).as_deref(), Some(raw));
        }
    }
}
