//! `tern-cluster`: the operator's command for a cluster of tern nodes.
//!
//! - `tern-cluster set HOST:PORT...` reads every node's config version (`config get cluster`),
//!   then pushes version max+1 listing exactly these nodes to all of them (`config set`), so
//!   adding or removing a node is one command. `--also HOST:PORT` pushes the same config to a
//!   node that is not listed in it (a node being removed, so clients polling it move on).
//! - `tern-cluster show HOST:PORT` prints a node's config.
//!
//! Nothing is pushed unless every node answered the read: a half-updated cluster, with
//! nodes at different versions listing different members, is worse than none updated.
//! See docs/cluster.md.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tern::cluster::format::{parse_config_reply, ConfigReply};
use tern::cluster::{ClusterConfig, Node, VERSION_MAX};

#[derive(Parser, Debug)]
#[command(
    name = "tern-cluster",
    version,
    about = "Set or show the ElastiCache auto-discovery config of tern nodes"
)]
struct Cli {
    /// Seconds to wait for a node to connect or answer.
    #[arg(long, default_value_t = 5, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Push a new config listing exactly NODEs (version max+1) to every NODE.
    Set {
        /// The cluster's nodes, as HOST:PORT (a name or an IP; [v6]:PORT).
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
        /// Also push the new config to this node, without listing it (e.g. one being removed).
        #[arg(long, value_name = "NODE")]
        also: Vec<String>,
    },
    /// Print a node's current config.
    Show {
        /// The node, as HOST:PORT.
        node: String,
    },
}

/// A node named on the command line.
struct Target {
    /// As the operator wrote it.
    label: String,
    /// Where to connect.
    addr: SocketAddr,
    /// Its entry in the config.
    node: Node,
}

fn resolve(label: &str) -> Result<Target, String> {
    let (host, port) = label
        .rsplit_once(':')
        .ok_or_else(|| format!("{label}: expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{label}: bad port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{label}: no host"));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{label}: cannot resolve {host}: {e}"))?
        .collect();
    // ElastiCache advertises IPv4; prefer it when a name has both.
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{label}: {host} has no address"))?;
    let ip: IpAddr = addr.ip();
    Ok(Target {
        label: label.to_string(),
        addr,
        node: Node {
            host: host.to_string(),
            ip,
            port,
        },
    })
}

/// One connection to a node, with the bytes read and not yet used.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// `config get cluster`.
    fn get_config(&mut self) -> Result<ConfigReply, String> {
        self.stream
            .write_all(b"config get cluster\r\n")
            .map_err(|e| e.to_string())?;
        loop {
            match parse_config_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => self.fill().map_err(|e| e.to_string())?,
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// `config set cluster 0 <bytes>`: the reply line.
    fn set_config(&mut self, data: &[u8]) -> Result<String, String> {
        let mut req = format!("config set cluster 0 {}\r\n", data.len()).into_bytes();
        req.extend_from_slice(data);
        req.extend_from_slice(b"\r\n");
        self.stream.write_all(&req).map_err(|e| e.to_string())?;
        loop {
            if let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
                self.buf.drain(..eol + 2);
                return Ok(line);
            }
            self.fill().map_err(|e| e.to_string())?;
        }
    }
}

fn show(label: &str, timeout: Duration) -> ExitCode {
    let target = match resolve(label) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tern-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reply = Conn::open(target.addr, timeout)
        .map_err(|e| e.to_string())
        .and_then(|mut c| c.get_config());
    match reply {
        Ok(ConfigReply::Config(config)) => {
            println!("version {}", config.version());
            for node in config.nodes() {
                println!("{node}");
            }
            ExitCode::SUCCESS
        }
        Ok(ConfigReply::Missing) => {
            println!("no config");
            ExitCode::SUCCESS
        }
        Ok(ConfigReply::Error(line)) => {
            eprintln!("tern-cluster: {label}: {line} (does it serve auto-discovery?)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tern-cluster: {label}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn set(nodes: &[String], also: &[String], timeout: Duration) -> ExitCode {
    let resolved: Result<Vec<Target>, String> = nodes.iter().map(|n| resolve(n)).collect();
    let extra: Result<Vec<Target>, String> = also.iter().map(|n| resolve(n)).collect();
    let (members, extra) = match (resolved, extra) {
        (Ok(m), Ok(e)) => (m, e),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("tern-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let targets: Vec<&Target> = members.iter().chain(extra.iter()).collect();

    // Read every node's version first; push nothing unless all answered.
    let mut conns = Vec::with_capacity(targets.len());
    let mut max_version = 0u32;
    let mut failed = false;
    for t in &targets {
        let read = Conn::open(t.addr, timeout)
            .map_err(|e| e.to_string())
            .and_then(|mut c| c.get_config().map(|r| (c, r)));
        match read {
            Ok((conn, ConfigReply::Config(config))) => {
                max_version = max_version.max(config.version());
                conns.push((conn, config.version()));
            }
            Ok((conn, ConfigReply::Missing)) => conns.push((conn, 0)),
            Ok((_, ConfigReply::Error(line))) => {
                eprintln!("{:<24} {line} (does it serve auto-discovery?)", t.label);
                failed = true;
            }
            Err(e) => {
                eprintln!("{:<24} {e}", t.label);
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("tern-cluster: not every node answered; nothing was changed");
        return ExitCode::FAILURE;
    }
    if max_version >= VERSION_MAX {
        eprintln!("tern-cluster: version {max_version} is the highest clients accept");
        return ExitCode::FAILURE;
    }
    let version = max_version + 1;
    let config = match ClusterConfig::new(version, members.iter().map(|t| t.node.clone()).collect())
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tern-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let data = config.render();
    for (t, (conn, old)) in targets.iter().zip(conns.iter_mut()) {
        let outcome = conn.set_config(&data);
        let shown = match &outcome {
            Ok(line) => line.as_str(),
            Err(e) => e.as_str(),
        };
        println!("{:<24} version {old} -> {version}  {shown}", t.label);
        if !matches!(outcome.as_deref(), Ok("STORED")) {
            failed = true;
        }
    }
    if failed {
        eprintln!("tern-cluster: some nodes refused version {version}; run it again");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let timeout = Duration::from_secs(cli.timeout.max(1));
    match &cli.command {
        Command::Set { nodes, also } => set(nodes, also, timeout),
        Command::Show { node } => show(node, timeout),
    }
}
