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
            let l = bind_one(addr, settings.backlog)?;
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
            .map(bind_udp)
            .collect::<io::Result<Vec<_>>>()?;
    }
    Ok(listeners)
}

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
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
