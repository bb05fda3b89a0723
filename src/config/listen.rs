//! `-l` listen entries: `host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 address, or `*`
//! for every interface, several per flag separated by `,` or `;`, as memcached's
//! `server_sockets()` reads them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::error::ConfigError;

/// One listen entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// The host or address, brackets removed; `None` for `*` (every interface).
    pub host: Option<String>,
    /// This entry's own port (`host:port`), overriding `-p`/`-U`.
    pub port: Option<u16>,
    /// memcached's `notls:` prefix: this listener stays plaintext under `-Z`.
    pub notls: bool,
}

/// Splits one `-l` value into its entries, as memcached does (`strtok` on `,` and `;`, so
/// empty pieces vanish).
pub fn split_entries(value: &str) -> impl Iterator<Item = &str> {
    value.split([',', ';']).filter(|s| !s.is_empty())
}

/// Checks one entry.
pub fn parse_entry(entry: &str) -> Result<ListenSpec, ConfigError> {
    let (entry, notls) = super::tls::strip_notls(entry);
    if entry.starts_with("proto[") || entry.starts_with("tag[") {
        return Err(ConfigError::Unsupported {
            option: format!("-l {entry}"),
            reason: "per-listener protocol and tag prefixes are not implemented",
        });
    }
    let (host, rest) = if let Some(inner) = entry.strip_prefix('[') {
        let Some(end) = inner.find(']') else {
            return Err(ConfigError::invalid(
                "-l",
                entry,
                format!("Invalid IPV6 address: \"{entry}\""),
                1,
            ));
        };
        let host = &inner[..end];
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(ConfigError::invalid(
                "-l",
                entry,
                format!("Invalid IPV6 address: \"{entry}\""),
                1,
            ));
        }
        (host, &inner[end + 1..])
    } else {
        match entry.find(':') {
            // Exactly one colon: host:port. More than one: an unbracketed IPv6 address.
            Some(i) if !entry[i + 1..].contains(':') => (&entry[..i], &entry[i..]),
            _ => (entry, ""),
        }
    };
    let port = match rest {
        "" => None,
        _ => {
            let p = rest.strip_prefix(':').unwrap_or(rest);
            match p.parse::<u16>() {
                Ok(port) => Some(port),
                Err(_) => {
                    return Err(ConfigError::invalid(
                        "-l",
                        entry,
                        format!("Invalid port number: \"{p}\""),
                        1,
                    ))
                }
            }
        }
    };
    if host.is_empty() {
        return Err(ConfigError::malformed(
            "-l",
            entry,
            "an address, a host name or *",
        ));
    }
    Ok(ListenSpec {
        host: (host != "*").then(|| host.to_string()),
        port,
        notls,
    })
}

impl ListenSpec {
    /// The socket addresses this entry names, with `default_port` unless it has its own.
    /// `*` gives both `0.0.0.0` and `[::]` (bind the IPv6 one with `IPV6_V6ONLY`, as memcached
    /// does); a host name is resolved.
    pub fn socket_addrs(&self, default_port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let port = self.port.unwrap_or(default_port);
        match &self.host {
            None => Ok(vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            ]),
            Some(h) => match h.parse::<IpAddr>() {
                Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
                Err(_) => Ok((h.as_str(), port).to_socket_addrs()?.collect()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: Option<&str>, port: Option<u16>) -> ListenSpec {
        ListenSpec {
            host: host.map(str::to_string),
            port,
            notls: false,
        }
    }

    #[test]
    fn forms_memcached_accepts() {
        assert_eq!(
            parse_entry("127.0.0.1").unwrap(),
            spec(Some("127.0.0.1"), None)
        );
        assert_eq!(
            parse_entry("127.0.0.1:11300").unwrap(),
            spec(Some("127.0.0.1"), Some(11300))
        );
        assert_eq!(parse_entry("[::1]").unwrap(), spec(Some("::1"), None));
        assert_eq!(
            parse_entry("[::1]:11300").unwrap(),
            spec(Some("::1"), Some(11300))
        );
        assert_eq!(parse_entry("::1").unwrap(), spec(Some("::1"), None));
        assert_eq!(
            parse_entry("fe80::1:2").unwrap(),
            spec(Some("fe80::1:2"), None)
        );
        assert_eq!(parse_entry("*").unwrap(), spec(None, None));
        assert_eq!(
            parse_entry("localhost").unwrap(),
            spec(Some("localhost"), None)
        );
    }

    #[test]
    fn split_on_comma_and_semicolon() {
        assert_eq!(
            split_entries("127.0.0.1,[::1];10.0.0.1,,").collect::<Vec<_>>(),
            vec!["127.0.0.1", "[::1]", "10.0.0.1"]
        );
    }

    #[test]
    fn bad_entries_use_memcached_wording() {
        assert_eq!(
            parse_entry("[::1").unwrap_err().to_string(),
            "invalid value '[::1' for -l: Invalid IPV6 address: \"[::1\""
        );
        assert_eq!(
            parse_entry("127.0.0.1:abc").unwrap_err().to_string(),
            "invalid value '127.0.0.1:abc' for -l: Invalid port number: \"abc\""
        );
        assert_eq!(
            parse_entry("[::1]:70000").unwrap_err().to_string(),
            "invalid value '[::1]:70000' for -l: Invalid port number: \"70000\""
        );
        assert!(matches!(
            parse_entry("proto[ascii]:127.0.0.1").unwrap_err(),
            ConfigError::Unsupported { .. }
        ));
        let plain = parse_entry("notls:127.0.0.1:11300").unwrap();
        assert!(plain.notls);
        assert_eq!(plain.port, Some(11300));
    }

    #[test]
    fn socket_addrs_use_default_or_own_port() {
        assert_eq!(
            parse_entry("[::1]").unwrap().socket_addrs(11211).unwrap(),
            vec!["[::1]:11211".parse().unwrap()]
        );
        assert_eq!(
            parse_entry("127.0.0.1:9")
                .unwrap()
                .socket_addrs(11211)
                .unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
        assert_eq!(parse_entry("*").unwrap().socket_addrs(1).unwrap().len(), 2);
    }
}
