//! Runs the unit tests of the load generator's pure parts (its reply parser and its latency
//! histogram, in `benches/loadgen/`): the load generator is a `harness = false` bench, which
//! cannot run `#[test]`s of its own.
#![allow(dead_code)]

#[path = "../benches/loadgen/histogram.rs"]
mod histogram;
#[path = "../benches/loadgen/reply.rs"]
mod reply;
