//! Event loops, connections and buffers (being written, issue 2).
