//! The ElastiCache auto-discovery data format, as pure functions.
//!
//! A cluster config is two lines: a version and a node list.
//!
//! ```text
//! 12\n
//! cache1.example|10.0.0.1|11211 cache2.example|10.0.0.2|11211\n
//! ```
//!
//! Nodes are `host|ip|port`, separated by single spaces. Clients parse this rigidly (several
//! split on exactly one space, and pymemcache and the .NET client break on a blank IP), so
//! [`ClusterConfig::parse`] is lenient about what it accepts from an operator (runs of spaces,
//! `\r\n` line ends, a missing final newline) but [`ClusterConfig::render`] always writes the one
//! canonical form.
//!
//! The `config get cluster` reply (`CONFIG cluster 0 <N>`) is composed here, once per published
//! config so serving it is one copy, and parsed back for the operator command (`tern-cluster`).
//! The legacy `VALUE AmazonElastiCache:cluster` hit is the text executor's
//! (`server/text.rs`, `compose_legacy`): it is an ordinary `VALUE` line.

use std::fmt;
use std::net::IpAddr;

/// The one config key ElastiCache defines (`config get cluster`).
pub const CONFIG_KEY: &[u8] = b"cluster";

/// The key engines before memcached 1.4.14 answered auto-discovery on (`get
/// AmazonElastiCache:cluster`); clients still fall back to it.
pub const LEGACY_KEY: &[u8] = b"AmazonElastiCache:cluster";

/// The highest config version: the .NET cluster client reads the version as an `Int32`.
pub const VERSION_MAX: u32 = i32::MAX as u32;

/// The flags every config reply carries. ElastiCache always sends `0` and clients match the
/// literal, so the flags of a `config set` are accepted and not kept.
pub const FLAGS: u32 = 0;

/// The longest host name accepted in a node entry (DNS's limit).
pub const HOST_MAX_LENGTH: usize = 255;

/// The largest config data accepted, in bytes: thousands of nodes fit, and a client reading the
/// reply never has to buffer an unbounded blob.
pub const DATA_MAX_LENGTH: usize = 256 * 1024;

/// One cache node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    /// The node's host name (clients show it; ElastiCache gives its DNS name).
    pub host: String,
    /// The node's IP address; clients connect to it, so it is never blank.
    pub ip: IpAddr,
    /// The node's TCP port.
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|{}", self.host, self.ip, self.port)
    }
}

/// A validated cluster config: a version in `1..=VERSION_MAX` and at least one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    version: u32,
    nodes: Vec<Node>,
}

/// Why config data was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Larger than [`DATA_MAX_LENGTH`].
    TooLong(usize),
    /// Not valid UTF-8 (host names are ASCII).
    NotText,
    /// The data has no version line.
    MissingVersion,
    /// The version line is not a decimal number.
    BadVersion(String),
    /// The version is 0 (libmemcached treats 0 as "no config") or above [`VERSION_MAX`].
    VersionOutOfRange(u64),
    /// There is no node line, or it lists no node.
    NoNodes,
    /// A node entry is not `host|ip|port` with a valid host, IP and port.
    BadNode {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Something follows the node line.
    TrailingData,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::TooLong(n) => write!(
                f,
                "config data is {n} bytes, more than the {DATA_MAX_LENGTH} allowed"
            ),
            ConfigError::NotText => f.write_str("config data is not text"),
            ConfigError::MissingVersion => f.write_str("config data has no version line"),
            ConfigError::BadVersion(v) => write!(f, "config version {v:?} is not a number"),
            ConfigError::VersionOutOfRange(v) => {
                write!(f, "config version {v} is not between 1 and {VERSION_MAX}")
            }
            ConfigError::NoNodes => f.write_str("config data has no node line"),
            ConfigError::BadNode { entry, reason } => {
                write!(f, "node {entry:?} is not host|ip|port: {reason}")
            }
            ConfigError::TrailingData => f.write_str("config data has more than two lines"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ClusterConfig {
    /// A config of `version` listing `nodes`.
    pub fn new(version: u32, nodes: Vec<Node>) -> Result<ClusterConfig, ConfigError> {
        if version == 0 || version > VERSION_MAX {
            return Err(ConfigError::VersionOutOfRange(u64::from(version)));
        }
        if nodes.is_empty() {
            return Err(ConfigError::NoNodes);
        }
        for node in &nodes {
            check_host(&node.host).map_err(|reason| ConfigError::BadNode {
                entry: node.to_string(),
                reason,
            })?;
            if node.port == 0 {
                return Err(ConfigError::BadNode {
                    entry: node.to_string(),
                    reason: "port 0",
                });
            }
        }
        Ok(ClusterConfig { version, nodes })
    }

    /// Parses config data: a version line, then a node line of `host|ip|port` entries.
    ///
    /// Lenient in form (`\r\n` or `\n` line ends, the final newline optional, runs of spaces or
    /// tabs between nodes, blank lines at the end), strict in content.
    pub fn parse(data: &[u8]) -> Result<ClusterConfig, ConfigError> {
        if data.len() > DATA_MAX_LENGTH {
            return Err(ConfigError::TooLong(data.len()));
        }
        let text = std::str::from_utf8(data).map_err(|_| ConfigError::NotText)?;
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let version_line = lines.next().unwrap_or("").trim_matches([' ', '\t']);
        if version_line.is_empty() {
            return Err(ConfigError::MissingVersion);
        }
        let version = parse_version(version_line)?;
        let node_line = lines.next().ok_or(ConfigError::NoNodes)?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(ConfigError::TrailingData);
        }
        let nodes = node_line
            .split([' ', '\t'])
            .filter(|e| !e.is_empty())
            .map(parse_node)
            .collect::<Result<Vec<Node>, ConfigError>>()?;
        ClusterConfig::new(version, nodes)
    }

    /// The config version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The nodes, in the order given.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The canonical data: `<version>\n<node> <node>…\n`.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.nodes.len() * 48);
        out.extend_from_slice(itoa::Buffer::new().format(self.version).as_bytes());
        out.push(b'\n');
        for (i, node) in self.nodes.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(node.to_string().as_bytes());
        }
        out.push(b'\n');
        out
    }
}

fn parse_version(s: &str) -> Result<u32, ConfigError> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::BadVersion(s.chars().take(32).collect()));
    }
    // At most 10 digits: fits a u64.
    let v: u64 = s
        .parse()
        .map_err(|_| ConfigError::BadVersion(s.to_string()))?;
    if v == 0 || v > u64::from(VERSION_MAX) {
        return Err(ConfigError::VersionOutOfRange(v));
    }
    Ok(v as u32)
}

fn parse_node(entry: &str) -> Result<Node, ConfigError> {
    let bad = |reason| ConfigError::BadNode {
        entry: entry.chars().take(300).collect(),
        reason,
    };
    let mut parts = entry.split('|');
    let (Some(host), Some(ip), Some(port), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("it needs exactly three |-separated fields"));
    };
    check_host(host).map_err(bad)?;
    if ip.is_empty() {
        return Err(bad("the IP is blank (clients connect to it)"));
    }
    let ip: IpAddr = ip.parse().map_err(|_| bad("the IP is not an IP address"))?;
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(bad("the port is not a number from 1 to 65535")),
    };
    Ok(Node {
        host: host.to_string(),
        ip,
        port,
    })
}

fn check_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("the host is blank");
    }
    if host.len() > HOST_MAX_LENGTH {
        return Err("the host is longer than 255 bytes");
    }
    if !host.bytes().all(|b| b.is_ascii_graphic() && b != b'|') {
        return Err("the host has a character other than printable ASCII");
    }
    Ok(())
}

/// Appends the `config get cluster` reply for `data`:
/// `CONFIG cluster 0 <N>\r\n<data>\r\nEND\r\n`, `N` counting all of `data`.
pub fn compose_config_reply(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(32 + data.len());
    out.extend_from_slice(b"CONFIG cluster 0 ");
    out.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\nEND\r\n");
}

/// What a server answered to `config get cluster`, as parsed by [`parse_config_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigReply {
    /// `CONFIG cluster <flags> <N>` with valid data.
    Config(ClusterConfig),
    /// `END` alone: the server has no config.
    Missing,
    /// An error line (`ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`), without its `\r\n`.
    Error(String),
}

/// Why a `config get` reply could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The reply is not one a config server sends.
    Malformed(String),
    /// The reply is well formed but its data is not a valid config.
    Invalid(ConfigError),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Malformed(what) => write!(f, "malformed reply: {what}"),
            ReplyError::Invalid(e) => write!(f, "invalid config in reply: {e}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Parses a `config get cluster` reply from the start of `buf`.
///
/// `Ok(None)` means more bytes are needed; `Ok(Some((reply, consumed)))` a whole reply.
pub fn parse_config_reply(buf: &[u8]) -> Result<Option<(ConfigReply, usize)>, ReplyError> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > 1024 {
            return Err(ReplyError::Malformed("no line end in 1024 bytes".into()));
        }
        return Ok(None);
    };
    let line = &buf[..eol];
    let after_line = eol + 2;
    if line == b"END" {
        return Ok(Some((ConfigReply::Missing, after_line)));
    }
    if line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR") {
        let text = String::from_utf8_lossy(line).into_owned();
        return Ok(Some((ConfigReply::Error(text), after_line)));
    }
    let malformed = || ReplyError::Malformed(String::from_utf8_lossy(line).into_owned());
    let header = std::str::from_utf8(line).map_err(|_| malformed())?;
    let fields: Vec<&str> = header.split(' ').collect();
    let len: usize = match fields.as_slice() {
        ["CONFIG", "cluster", flags, len] | ["VALUE", "AmazonElastiCache:cluster", flags, len]
            if flags.parse::<u32>().is_ok() =>
        {
            len.parse().map_err(|_| malformed())?
        }
        _ => return Err(malformed()),
    };
    if len > DATA_MAX_LENGTH {
        return Err(ReplyError::Invalid(ConfigError::TooLong(len)));
    }
    let end = after_line + len + b"\r\nEND\r\n".len();
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[after_line + len..end] != b"\r\nEND\r\n" {
        return Err(ReplyError::Malformed("data not followed by END".into()));
    }
    let config =
        ClusterConfig::parse(&buf[after_line..after_line + len]).map_err(ReplyError::Invalid)?;
    Ok(Some((ConfigReply::Config(config), end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, ip: &str, port: u16) -> Node {
        Node {
            host: host.into(),
            ip: ip.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn renders_canonical_two_lines() {
        let c = ClusterConfig::new(
            12,
            vec![
                node("a.example", "10.0.0.1", 11211),
                node("b", "::1", 11212),
            ],
        )
        .unwrap();
        assert_eq!(c.render(), b"12\na.example|10.0.0.1|11211 b|::1|11212\n");
    }

    #[test]
    fn parse_accepts_operator_forms_and_normalises() {
        for data in [
            &b"3\nh1|127.0.0.1|1 h2|127.0.0.1|2\n"[..],
            b"3\nh1|127.0.0.1|1 h2|127.0.0.1|2",
            b"3\r\nh1|127.0.0.1|1   h2|127.0.0.1|2\r\n",
            b" 3 \n\th1|127.0.0.1|1\th2|127.0.0.1|2 \n\n",
        ] {
            let c = ClusterConfig::parse(data).unwrap();
            assert_eq!(c.render(), b"3\nh1|127.0.0.1|1 h2|127.0.0.1|2\n");
        }
    }

    #[test]
    fn parse_round_trips_render() {
        let c = ClusterConfig::new(7, vec![node("x", "1.2.3.4", 5)]).unwrap();
        assert_eq!(ClusterConfig::parse(&c.render()).unwrap(), c);
    }

    #[test]
    fn version_zero_is_refused_for_libmemcached() {
        assert_eq!(
            ClusterConfig::parse(b"0\nh|127.0.0.1|1\n"),
            Err(ConfigError::VersionOutOfRange(0))
        );
    }

    #[test]
    fn version_at_2_pow_31_is_refused_for_dotnet_int32() {
        assert!(ClusterConfig::parse(b"2147483647\nh|127.0.0.1|1\n").is_ok());
        assert_eq!(
            ClusterConfig::parse(b"2147483648\nh|127.0.0.1|1\n"),
            Err(ConfigError::VersionOutOfRange(2_147_483_648))
        );
        assert!(matches!(
            ClusterConfig::parse(b"99999999999\nh|127.0.0.1|1\n"),
            Err(ConfigError::BadVersion(_))
        ));
    }

    #[test]
    fn bad_versions_are_refused() {
        for data in [
            &b"-1\nh|127.0.0.1|1"[..],
            b"+1\nh|127.0.0.1|1",
            b"x\nh|1.1.1.1|1",
        ] {
            assert!(matches!(
                ClusterConfig::parse(data),
                Err(ConfigError::BadVersion(_))
            ));
        }
        assert_eq!(ClusterConfig::parse(b""), Err(ConfigError::MissingVersion));
        assert_eq!(
            ClusterConfig::parse(b"\n"),
            Err(ConfigError::MissingVersion)
        );
    }

    #[test]
    fn blank_ip_is_refused_for_dotnet_and_pymemcache() {
        assert!(matches!(
            ClusterConfig::parse(b"1\nh||11211\n"),
            Err(ConfigError::BadNode { .. })
        ));
    }

    #[test]
    fn bad_nodes_are_refused() {
        for data in [
            &b"1\nh|127.0.0.1\n"[..],
            b"1\nh|127.0.0.1|1|x\n",
            b"1\n|127.0.0.1|1\n",
            b"1\nh|localhost|1\n",
            b"1\nh|127.0.0.1|0\n",
            b"1\nh|127.0.0.1|65536\n",
            b"1\nh|127.0.0.1|+1\n",
            b"1\nh\x01|127.0.0.1|1\n",
        ] {
            assert!(
                matches!(ClusterConfig::parse(data), Err(ConfigError::BadNode { .. })),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn missing_or_empty_node_line_is_refused() {
        assert_eq!(ClusterConfig::parse(b"1\n"), Err(ConfigError::NoNodes));
        assert_eq!(ClusterConfig::parse(b"1"), Err(ConfigError::NoNodes));
        assert_eq!(ClusterConfig::parse(b"1\n  \n"), Err(ConfigError::NoNodes));
    }

    #[test]
    fn a_third_line_is_refused() {
        assert_eq!(
            ClusterConfig::parse(b"1\nh|127.0.0.1|1\nmore\n"),
            Err(ConfigError::TrailingData)
        );
    }

    #[test]
    fn oversized_data_is_refused() {
        let data = vec![b'1'; DATA_MAX_LENGTH + 1];
        assert_eq!(
            ClusterConfig::parse(&data),
            Err(ConfigError::TooLong(DATA_MAX_LENGTH + 1))
        );
    }

    #[test]
    fn config_reply_counts_both_line_feeds() {
        let mut out = Vec::new();
        compose_config_reply(b"1\nh|127.0.0.1|11211\n", &mut out);
        assert_eq!(
            out,
            b"CONFIG cluster 0 20\r\n1\nh|127.0.0.1|11211\n\r\nEND\r\n"
        );
    }

    #[test]
    fn reply_parser_reads_what_the_composer_writes() {
        let c = ClusterConfig::new(4, vec![node("h", "127.0.0.1", 1)]).unwrap();
        let mut out = Vec::new();
        compose_config_reply(&c.render(), &mut out);
        let total = out.len();
        for cut in 0..total {
            assert_eq!(parse_config_reply(&out[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(
            parse_config_reply(&out),
            Ok(Some((ConfigReply::Config(c), total)))
        );
    }

    #[test]
    fn reply_parser_reads_missing_and_errors() {
        assert_eq!(
            parse_config_reply(b"END\r\n"),
            Ok(Some((ConfigReply::Missing, 5)))
        );
        assert_eq!(
            parse_config_reply(b"ERROR\r\n"),
            Ok(Some((ConfigReply::Error("ERROR".into()), 7)))
        );
        assert!(parse_config_reply(b"STORED\r\n").is_err());
        assert!(parse_config_reply(b"CONFIG cluster 0 3\r\nabcXXXXXXX").is_err());
    }
}
