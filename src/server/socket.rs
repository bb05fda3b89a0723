//! The stream types tern serves: TCP and Unix-domain sockets.

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

/// A client connection's socket.
#[derive(Debug)]
pub enum Socket {
    /// TCP (IPv4 or IPv6).
    Tcp(TcpStream),
    /// TCP from a TLS listener (`-Z`): the worker serves it through a TLS session.
    TlsTcp(TcpStream),
    /// A Unix-domain stream socket (`-s`).
    Unix(UnixStream),
}

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// TCP whose connections speak TLS (`-Z`).
    TlsTcp(TcpListener),
    /// Unix-domain.
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection; TCP ones get `TCP_NODELAY` (replies are already gathered into
    /// as few writes as possible, so Nagle would only add latency).
    pub fn accept(&self) -> io::Result<Socket> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok(Socket::Tcp(s))
            }
            Listener::TlsTcp(l) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok(Socket::TlsTcp(s))
            }
            Listener::Unix(l) => Ok(Socket::Unix(l.accept()?.0)),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Socket::Tcp($s) | Socket::TlsTcp($s) => $e,
            Socket::Unix($s) => $e,
        }
    };
}

impl Socket {
    /// Whether the connection came from a TLS listener.
    pub fn is_tls(&self) -> bool {
        matches!(self, Socket::TlsTcp(_))
    }

    /// The descriptor, which names the connection in `stats conns` as in memcached.
    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        delegate!(self, s => s.as_raw_fd())
    }

    /// The peer's address in memcached's `stats conns` form (`tcp:1.2.3.4:5`, `unix:path`).
    pub fn peer_name(&self) -> String {
        match self {
            Socket::Tcp(s) | Socket::TlsTcp(s) => s
                .peer_addr()
                .map_or_else(|_| "tcp:?".into(), |a| format!("tcp:{a}")),
            Socket::Unix(_) => "unix:".into(),
        }
    }

    /// The local (listening) address in the same form.
    pub fn local_name(&self) -> String {
        match self {
            Socket::Tcp(s) | Socket::TlsTcp(s) => s
                .local_addr()
                .map_or_else(|_| "tcp:?".into(), |a| format!("tcp:{a}")),
            Socket::Unix(s) => s
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix:".into()),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        delegate!(self, s => s.read(buf))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        delegate!(self, s => s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        delegate!(self, s => s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        delegate!(self, s => s.flush())
    }
}

impl Source for Socket {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        delegate!(self, s => s.register(r, t, i))
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        delegate!(self, s => s.reregister(r, t, i))
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        delegate!(self, s => s.deregister(r))
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) | Listener::TlsTcp(l) => l.register(r, t, i),
            Listener::Unix(l) => l.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) | Listener::TlsTcp(l) => l.reregister(r, t, i),
            Listener::Unix(l) => l.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) | Listener::TlsTcp(l) => l.deregister(r),
            Listener::Unix(l) => l.deregister(r),
        }
    }
}

/// Binds a Unix-domain listener at `path` with permissions `mask` (`-s`, `-a`), as memcached
/// does: an existing *socket* file at the path is taken to be stale and removed first; any other
/// kind of file is left alone and binding fails.
pub fn bind_unix(path: &Path, mask: u32) -> io::Result<std::os::unix::net::UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask & 0o777))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
