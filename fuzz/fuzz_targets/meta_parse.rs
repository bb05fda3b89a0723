//! Fuzzes the meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`) through
//! `tern_protocol::text::parse` and the meta composers, asserting their invariants (see
//! `tern_fuzz::check_meta`). The input's first byte after the knobs picks the command prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_fuzz::{check_meta, meta_input, Case};

fuzz_target!(|data: &[u8]| {
    if let Some(case) = Case::decode(data) {
        let input = meta_input(case.input);
        let split = case.split.min(input.len());
        check_meta(&Case {
            limits: case.limits,
            split,
            input: &input,
        });
    }
});
