//! memcached's classic text protocol (memcached 1.6.18's `proto_text.c` is the reference).
//!
//! Placeholder: the parser and composer are being written (issue 2).

use crate::{Limits, ParseError, Request, Response};

/// Parses one request from the start of `input`.
///
/// Returns the request and the number of bytes it occupies, `ParseError::Incomplete` when more
/// input is needed, or the protocol error memcached would answer.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<(Request<'a>, usize), ParseError> {
    let _ = (input, limits);
    Err(ParseError::Incomplete { needed: None })
}

/// Appends the text form of `response` to `out`.
pub fn compose(response: &Response<'_>, out: &mut Vec<u8>) {
    let _ = (response, out);
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n`; the caller appends the data and `\r\n`.
pub fn compose_value_header(
    key: &[u8],
    flags: u32,
    value_len: usize,
    cas: Option<u64>,
    out: &mut Vec<u8>,
) {
    let _ = (key, flags, value_len, cas, out);
}
