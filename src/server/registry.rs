//! Who is connected, for `stats conns`.
//!
//! Workers own their connections, so a `stats conns` served by one worker cannot look at the
//! others' directly. Each connection registers here when it is adopted and leaves when it closes
//! (a lock taken twice per connection, never per request); its last-activity time is an atomic
//! the owning worker stores with a relaxed write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// What a connection's worker tells `stats conns` about it, with relaxed stores.
#[derive(Debug, Default)]
pub struct Activity {
    /// When the client last did anything (clock seconds).
    pub last_active: AtomicU32,
    /// Whether it is in the middle of sending a storage command's data (`conn_nread`).
    pub reading_data: AtomicBool,
}

/// One registered connection.
#[derive(Debug)]
struct Entry {
    addr: String,
    listen_addr: String,
    activity: Arc<Activity>,
    /// Whether the connection is a `watch` stream (`conn_watch`).
    watching: bool,
}

/// A socket the server listens on.
#[derive(Debug)]
struct Listening {
    name: String,
    /// A UDP socket (memcached lists it as a connection in `conn_read`).
    udp: bool,
    /// When it was opened (clock seconds).
    since: u32,
}

/// The registry of open connections and listening sockets, keyed by socket descriptor (as
/// memcached keys `stats conns` lines).
#[derive(Debug, Default)]
pub struct Registry {
    conns: Mutex<BTreeMap<i32, Entry>>,
    listeners: Mutex<BTreeMap<i32, Listening>>,
}

impl Registry {
    /// Records a listening stream socket, e.g. `tcp:127.0.0.1:11211` or `unix:/run/tern.sock`.
    pub fn add_listener(&self, fd: i32, name: String, now: u32) {
        let l = Listening {
            name,
            udp: false,
            since: now,
        };
        self.listeners.lock().insert(fd, l);
    }

    /// Records a UDP socket, e.g. `udp:127.0.0.1:11211`.
    pub fn add_udp(&self, fd: i32, name: String, now: u32) {
        let l = Listening {
            name,
            udp: true,
            since: now,
        };
        self.listeners.lock().insert(fd, l);
    }

    /// Records a connection; returns the cells its worker updates.
    pub fn add(&self, fd: i32, addr: String, listen_addr: String, now: u32) -> Arc<Activity> {
        let activity = Arc::new(Activity {
            last_active: AtomicU32::new(now),
            reading_data: AtomicBool::new(false),
        });
        self.conns.lock().insert(
            fd,
            Entry {
                addr,
                listen_addr,
                activity: activity.clone(),
                watching: false,
            },
        );
        activity
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

    /// memcached's `stats conns` lines, in descriptor order: each listening socket's address
    /// and state (a UDP socket as memcached's `UDP` connection), then each client's address,
    /// listening address, state and seconds since its last command.
    pub fn lines(&self, now: u32) -> Vec<(String, String)> {
        let listeners = self.listeners.lock();
        let conns = self.conns.lock();
        let mut out = Vec::with_capacity(4 * (listeners.len() + conns.len()));
        let mut ls = listeners.iter().peekable();
        let mut cs = conns.iter().peekable();
        loop {
            let listener_first = match (ls.peek(), cs.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((lfd, _)), Some((cfd, _))) => lfd < cfd,
            };
            if listener_first {
                let Some((fd, l)) = ls.next() else { break };
                if l.udp {
                    out.push((format!("{fd}:UDP"), "UDP".into()));
                }
                out.push((format!("{fd}:addr"), l.name.clone()));
                let state = if l.udp { "conn_read" } else { "conn_listening" };
                out.push((format!("{fd}:state"), state.into()));
                let idle = now.saturating_sub(l.since);
                out.push((format!("{fd}:secs_since_last_cmd"), idle.to_string()));
                continue;
            }
            let Some((fd, e)) = cs.next() else { break };
            let idle = now.saturating_sub(e.activity.last_active.load(Ordering::Relaxed));
            out.push((format!("{fd}:addr"), e.addr.clone()));
            out.push((format!("{fd}:listen_addr"), e.listen_addr.clone()));
            let state = if e.watching {
                "conn_watch"
            } else if e.activity.reading_data.load(Ordering::Relaxed) {
                "conn_nread"
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
        r.add_listener(5, "tcp:127.0.0.1:11211".into(), 100);
        r.add_udp(6, "udp:127.0.0.1:11211".into(), 100);
        let cell = r.add(
            9,
            "tcp:127.0.0.1:5000".into(),
            "tcp:127.0.0.1:11211".into(),
            100,
        );
        let other = r.add(10, "unix:/s".into(), "unix:/s".into(), 100);
        other.reading_data.store(true, Ordering::Relaxed);
        cell.last_active.store(103, Ordering::Relaxed);
        let lines = r.lines(110);
        let pairs: Vec<(&str, &str)> = lines
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // memcached's lines and order (descriptor order, listeners with their own fds).
        assert_eq!(
            pairs,
            [
                ("5:addr", "tcp:127.0.0.1:11211"),
                ("5:state", "conn_listening"),
                ("5:secs_since_last_cmd", "10"),
                ("6:UDP", "UDP"),
                ("6:addr", "udp:127.0.0.1:11211"),
                ("6:state", "conn_read"),
                ("6:secs_since_last_cmd", "10"),
                ("9:addr", "tcp:127.0.0.1:5000"),
                ("9:listen_addr", "tcp:127.0.0.1:11211"),
                ("9:state", "conn_waiting"),
                ("9:secs_since_last_cmd", "7"),
                ("10:addr", "unix:/s"),
                ("10:listen_addr", "unix:/s"),
                ("10:state", "conn_nread"),
                ("10:secs_since_last_cmd", "10"),
            ]
        );
        r.remove(9);
        assert!(!r.lines(110).iter().any(|(k, _)| k.starts_with("9:")));
    }
}
