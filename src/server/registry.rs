//! Who is connected, for `stats conns`.
//!
//! Workers own their connections, so a `stats conns` served by one worker cannot look at the
//! others' directly. Each connection registers here when it is adopted and leaves when it closes
//! (a lock taken twice per connection, never per request); its last-activity time is an atomic
//! the owning worker stores with a relaxed write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// One registered connection.
#[derive(Debug)]
struct Entry {
    addr: String,
    listen_addr: String,
    last_active: Arc<AtomicU32>,
    /// Whether the connection is a `watch` stream (`conn_watch`).
    watching: bool,
}

/// The registry of open client connections, keyed by socket descriptor (as memcached keys
/// `stats conns` lines).
#[derive(Debug, Default)]
pub struct Registry {
    conns: Mutex<BTreeMap<i32, Entry>>,
    listeners: Mutex<Vec<String>>,
}

impl Registry {
    /// Records a listening socket, e.g. `tcp:127.0.0.1:11211` or `unix:/run/tern.sock`.
    pub fn add_listener(&self, name: String) {
        self.listeners.lock().push(name);
    }

    /// Records a connection; returns the cell its worker updates on activity.
    pub fn add(&self, fd: i32, addr: String, listen_addr: String, now: u32) -> Arc<AtomicU32> {
        let last_active = Arc::new(AtomicU32::new(now));
        self.conns.lock().insert(
            fd,
            Entry {
                addr,
                listen_addr,
                last_active: last_active.clone(),
                watching: false,
            },
        );
        last_active
    }

    /// Marks a connection as a `watch` stream.
    pub fn mark_watching(&self, fd: i32) {
        if let Some(e) = self.conns.lock().get_mut(&fd) {
            e.watching = true;
        }
    }

    /// Forgets a connection.
    pub fn remove(&self, fd: i32) {
        self.conns.lock().remove(&fd);
    }

    /// memcached's `stats conns` lines: listeners first, then each client's address, listening
    /// address, state and seconds since its last command.
    pub fn lines(&self, now: u32) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, name) in self.listeners.lock().iter().enumerate() {
            out.push((format!("L{i}:addr"), name.clone()));
            out.push((format!("L{i}:state"), "conn_listening".into()));
        }
        for (fd, e) in self.conns.lock().iter() {
            let idle = now.saturating_sub(e.last_active.load(Ordering::Relaxed));
            out.push((format!("{fd}:addr"), e.addr.clone()));
            out.push((format!("{fd}:listen_addr"), e.listen_addr.clone()));
            let state = if e.watching {
                "conn_watch"
            } else if idle == 0 {
                "conn_parse_cmd"
            } else {
                "conn_waiting"
            };
            out.push((format!("{fd}:state"), state.into()));
            out.push((format!("{fd}:secs_since_last_cmd"), idle.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_listeners_and_connections_with_idle_time() {
        let r = Registry::default();
        r.add_listener("tcp:127.0.0.1:11211".into());
        let cell = r.add(
            9,
            "tcp:127.0.0.1:5000".into(),
            "tcp:127.0.0.1:11211".into(),
            100,
        );
        cell.store(103, Ordering::Relaxed);
        let lines = r.lines(110);
        assert!(lines.contains(&("9:addr".into(), "tcp:127.0.0.1:5000".into())));
        assert!(lines.contains(&("9:secs_since_last_cmd".into(), "7".into())));
        assert!(lines.contains(&("9:state".into(), "conn_waiting".into())));
        assert!(lines.contains(&("L0:state".into(), "conn_listening".into())));
        r.remove(9);
        assert!(!r.lines(110).iter().any(|(k, _)| k.starts_with("9:")));
    }
}
