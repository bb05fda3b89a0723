//! Binding the listening sockets before the server starts (and before root is dropped).

use std::io;
use std::net::SocketAddr;

use super::socket;
use crate::config::Settings;

/// Binds the listening sockets for `settings`: the Unix socket when `-s` is given (which, as in
/// memcached, turns network listening off), else TCP on the `-l` addresses and `-p` port with
/// backlog `-b` (`-p 0` turns TCP off, as in memcached).
pub fn bind(settings: &Settings) -> io::Result<Listeners> {
    if let Some(path) = &settings.unix_socket {
        return Ok(Listeners {
            unix: Some(socket::bind_unix(path, settings.unix_mask)?),
            ..Listeners::default()
        });
    }
    let mut listeners = Listeners::default();
    if settings.port.is_on() {
        for (addr, tls) in settings.listen_addrs_tls(settings.port.bind_port())? {
            let l = bind_one(addr, settings.backlog, settings.sock_cookie_id)?;
            if settings.tls.enabled && !tls {
                listeners.notls.push(l);
            } else {
                listeners.tcp.push(l);
            }
        }
    }
    if settings.udp_port.is_on() {
        listeners.udp = settings
            .listen_addrs(settings.udp_port.bind_port())?
            .into_iter()
            .map(|addr| bind_udp(addr, settings.sock_cookie_id))
            .collect::<io::Result<Vec<_>>>()?;
    }
    Ok(listeners)
}

/// Puts `-o sock_cookie_id`'s mark on a listening socket. Setting a mark needs
/// `CAP_NET_ADMIN`; without it, as memcached, the error is reported and the socket is used
/// unmarked.
fn mark(socket: &socket2::Socket, addr: SocketAddr, id: u32) {
    if id == 0 {
        return;
    }
    if let Err(e) = socket.set_mark(id) {
        log::warn!("cannot mark the socket on {addr} with sock_cookie_id {id} (SO_MARK): {e}");
    }
}

fn bind_udp(addr: SocketAddr, cookie: u32) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    mark(&socket, addr, cookie);
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_one(addr: SocketAddr, backlog: i32, cookie: u32) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    mark(&socket, addr, cookie);
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Sockets a server listens on, bound before the server starts (and before root is dropped).
#[derive(Debug, Default)]
pub struct Listeners {
    /// TCP listeners (speaking TLS when the settings enable it).
    pub tcp: Vec<std::net::TcpListener>,
    /// TCP listeners that stay plaintext under `-Z` (`-l notls:...`).
    pub notls: Vec<std::net::TcpListener>,
    /// The TLS configuration, loaded before privileges are dropped (as memcached loads its
    /// certificates); loaded by `start_on` when absent and `-Z` is on.
    pub tls: Option<super::tls::TlsContext>,
    /// A Unix-domain listener (`-s`).
    pub unix: Option<std::os::unix::net::UnixListener>,
    /// UDP sockets (`-U`).
    pub udp: Vec<std::net::UdpSocket>,
}

impl From<Vec<std::net::TcpListener>> for Listeners {
    fn from(tcp: Vec<std::net::TcpListener>) -> Self {
        Listeners {
            tcp,
            ..Listeners::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenPort;

    /// Whether this process may set socket marks (`CAP_NET_ADMIN`, bit 12 of `CapEff`).
    fn may_mark() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|caps| caps & (1 << 12) != 0)
    }

    #[test]
    fn sock_cookie_id_marks_the_tcp_and_udp_listeners() {
        let settings = Settings {
            port: ListenPort::Ephemeral,
            udp_port: ListenPort::Ephemeral,
            listen: vec!["127.0.0.1".into()],
            sock_cookie_id: 42,
            ..Settings::default()
        };
        let l = bind(&settings).unwrap();
        let marks: Vec<u32> = l
            .tcp
            .iter()
            .map(|t| socket2::SockRef::from(t).mark().unwrap())
            .chain(
                l.udp
                    .iter()
                    .map(|u| socket2::SockRef::from(u).mark().unwrap()),
            )
            .collect();
        assert_eq!(marks.len(), 2);
        // Without the capability the sockets are still bound, unmarked (memcached alike).
        let want = if may_mark() { 42 } else { 0 };
        assert_eq!(marks, [want, want]);
        // A connection accepted from the listener carries the mark.
        let addr = l.tcp[0].local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        l.tcp[0].set_nonblocking(false).unwrap();
        let (accepted, _) = l.tcp[0].accept().unwrap();
        assert_eq!(socket2::SockRef::from(&accepted).mark().unwrap(), want);
        // No mark unless asked for.
        let plain = bind(&Settings {
            sock_cookie_id: 0,
            ..settings
        })
        .unwrap();
        assert_eq!(socket2::SockRef::from(&plain.tcp[0]).mark().unwrap(), 0);
    }
}
