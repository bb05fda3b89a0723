//! memcached's classic text protocol; memcached 1.6.18's `proto_text.c` is the reference.
//!
//! - [`parse`] reads one request from the start of a buffer (zero-copy: keys and values borrow
//!   from it), telling apart a whole request, an incomplete one, and memcached's exact error.
//! - [`parse_auth_line`] reads the `-Y` login (`set` with `<user> <password>` as data) that an
//!   unauthenticated connection must send first; [`auth_reply_line`] writes its replies.
//! - [`compose`] and [`compose_value_header`] write the server's replies;
//!   [`compose_request`] writes requests, for clients (tests, load generator, cluster tool).
//!
//! Errors travel as [`crate::ErrorReply`] variants; `compose` holds the one table that turns
//! each into memcached's text line.

mod auth;
mod commands;
mod compose;
pub(crate) mod number;
mod operator;

mod parse;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
pub(crate) mod tokens;

pub use auth::{parse_auth_line, AuthLineError, AuthLogin, AuthReply};
pub use compose::{auth_reply_line, compose, compose_request, compose_value_header};
pub(crate) use parse::byte_count;
pub use parse::{parse, parse_general, MAX_LINE_WITHOUT_NEWLINE};

pub use crate::{item_fits, ITEM_HEADER_SIZE};
