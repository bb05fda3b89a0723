//! tern: a memcached-compatible, multi-threaded cache daemon.
//!
//! The crate is laid out by concern:
//! - [`store`]: the item store (slab allocator, LRU, index, CAS, TTL); no networking.
//! - [`server`]: event loops, connections and buffers; executes requests against the store.
//! - [`config`]: command-line flags and the conf file, validated into [`config::Settings`].
//! - [`auth`]: SASL PLAIN and ASCII (`-Y`) authentication decisions; pure logic.
//! - [`clock`]: the seconds clock every TTL is measured against.
//! - [`cluster`]: the ElastiCache auto-discovery config (`config get cluster`).
//! - [`daemon`]: process-level start-up steps (limits, `-u`, `-d`, `-k`, pid file).
//!
//! The wire formats live in the `tern-protocol` crate.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod server;
pub mod store;
