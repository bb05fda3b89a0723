//! Fuzzes `tern_protocol::text::parse` and asserts its invariants (see `tern_fuzz::check_text`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_fuzz::{check_text, Case};

fuzz_target!(|data: &[u8]| {
    if let Some(case) = Case::decode(data) {
        check_text(&case);
    }
});
