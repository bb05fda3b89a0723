//! How a node describes itself when nothing is configured: a host, IP and port.
//!
//! The host part is what most clients connect to (they prefer it to the IP), so it must lead
//! to the listener too:
//! - listening on a specific address: that address, written as an IP literal. The machine's
//!   host name may resolve to another interface (or to nothing), where nobody listens.
//! - listening on the wildcard: the machine's host name, which reaches the wildcard listener
//!   through whatever interface it resolves to; the IP literal when there is no usable name.
//!
//! The IP is what clients will connect to, so it must be an address the node really listens
//! on and never blank:
//! - listening on a specific address (`-l 127.0.0.1`, `-l 10.0.0.5`): that address. A node on
//!   loopback is only reachable on loopback, and advertising anything else would send clients
//!   to a port nobody listens on.
//! - listening on the wildcard (`-l 0.0.0.0`, `-l ::`): the primary non-loopback address of the
//!   machine, taken as the first address of an interface that is up, not loopback, of the
//!   wildcard's family (IPv6 link-local addresses are skipped: they need a scope to be used).
//!   Read from the interface list (`getifaddrs`), so no packet is sent to learn it; when there
//!   is none, loopback, which is still an address the node answers on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::format::{ClusterConfig, Node, HOST_MAX_LENGTH};

/// The config a node serves before anyone configures one: version 1, itself alone.
pub fn self_config(listen: SocketAddr) -> ClusterConfig {
    let ip = advertised_ip(listen.ip(), interface_addresses);
    let host = if listen.ip().is_unspecified() {
        hostname()
    } else {
        None
    };
    let node = Node {
        host: host.unwrap_or_else(|| ip.to_string()),
        ip,
        // A bound listener's port is never 0; `max` keeps the node valid all the same.
        port: listen.port().max(1),
    };
    // Version 1, one node, a host checked by `hostname` (or an IP literal), a non-zero port:
    // every rule of `ClusterConfig::new` holds.
    ClusterConfig::new(1, vec![node])
        .unwrap_or_else(|e| unreachable!("a node's self-description is valid: {e}"))
}

/// The system host name, when it is usable in a node entry.
pub fn hostname() -> Option<String> {
    let name = nix::unistd::gethostname().ok()?.into_string().ok()?;
    let usable = !name.is_empty()
        && name.len() <= HOST_MAX_LENGTH
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'|');
    usable.then_some(name)
}

/// The IP a node listening on `listen` advertises; `interfaces` lists the machine's addresses.
fn advertised_ip(listen: IpAddr, interfaces: impl FnOnce() -> Vec<IpAddr>) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    let want_v4 = listen.is_ipv4();
    let primary = interfaces().into_iter().find(|ip| {
        !ip.is_loopback()
            && !ip.is_unspecified()
            && ip.is_ipv4() == want_v4
            && !is_ipv6_link_local(ip)
    });
    primary.unwrap_or(if want_v4 {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    })
}

fn is_ipv6_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// The addresses of the machine's interfaces that are up, in the system's order.
fn interface_addresses() -> Vec<IpAddr> {
    use nix::net::if_::InterfaceFlags;
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|a| {
            let addr = a.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn a_specific_listen_address_is_advertised_as_is() {
        let got = advertised_ip("127.0.0.1".parse().unwrap(), || unreachable!());
        assert_eq!(got, "127.0.0.1".parse::<IpAddr>().unwrap());
        let got = advertised_ip("10.1.2.3".parse().unwrap(), || unreachable!());
        assert_eq!(got, "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn wildcard_advertises_the_first_non_loopback_address_of_its_family() {
        let list = ips(&[
            "127.0.0.1",
            "::1",
            "fe80::1",
            "2001:db8::5",
            "192.0.2.7",
            "10.0.0.1",
        ]);
        assert_eq!(
            advertised_ip("0.0.0.0".parse().unwrap(), || list.clone()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            advertised_ip("::".parse().unwrap(), || list),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn wildcard_without_interfaces_falls_back_to_loopback_never_blank() {
        assert_eq!(
            advertised_ip("0.0.0.0".parse().unwrap(), || ips(&["127.0.0.1"])),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            advertised_ip("::".parse().unwrap(), Vec::new),
            "::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn self_config_is_version_1_naming_this_node() {
        let c = self_config("127.0.0.1:22500".parse().unwrap());
        assert_eq!(c.version(), 1);
        assert_eq!(c.nodes().len(), 1);
        let n = &c.nodes()[0];
        assert_eq!(n.ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(n.port, 22500);
    }

    #[test]
    fn a_specific_listen_address_is_also_the_host_part() {
        // The machine's host name may resolve elsewhere; the listener's address cannot.
        let c = self_config("127.0.0.1:22500".parse().unwrap());
        assert_eq!(c.nodes()[0].host, "127.0.0.1");
        let c = self_config("[::1]:22501".parse().unwrap());
        let n = &c.nodes()[0];
        assert_eq!(n.host, "::1");
        assert_eq!(n.ip, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_wildcard_advertises_the_host_name_when_there_is_one() {
        let c = self_config("0.0.0.0:22502".parse().unwrap());
        let n = &c.nodes()[0];
        match hostname() {
            Some(name) => assert_eq!(n.host, name),
            None => assert_eq!(n.host, n.ip.to_string()),
        }
    }

    #[test]
    fn the_interface_list_can_be_read() {
        // The machine has at least loopback; no assertion on which addresses.
        let _ = interface_addresses();
    }
}
