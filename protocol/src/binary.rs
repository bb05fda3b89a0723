//! memcached's binary protocol (memcached 1.6.18's `proto_bin.c` and `protocol_binary.h` are the
//! reference).
//!
//! Placeholder: the codec is being written (issue 4).
