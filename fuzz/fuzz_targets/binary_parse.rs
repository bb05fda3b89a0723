//! Fuzzes `tern_protocol::binary::parse` and asserts its invariants (see `tern_fuzz::check_binary`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_fuzz::{check_binary, Case};

fuzz_target!(|data: &[u8]| {
    if let Some(case) = Case::decode(data) {
        check_binary(&case);
    }
});
