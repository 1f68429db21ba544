//! Who hands an email to the store, and why the store may refuse new mail: what the
//! [`super::EmailStore`] needs to protect itself (rate limits per client, load
//! shedding) without any inbound adapter deciding limits on its own.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// IPv6 addresses sharing this many leading bits are one client unless configured
/// otherwise: one host commonly holds a whole /64, and counting single addresses would
/// give it 2^64 allowances.
pub const DEFAULT_IPV6_CLIENT_PREFIX: u8 = 64;

/// The address `ip` counts as, for limits per client: its IPv4 address (an IPv4-mapped
/// IPv6 address is IPv4), or its IPv6 network of `ipv6_prefix` bits.
#[must_use]
pub fn client_network(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// The client an email comes from, as far as the store's limits are concerned: the
/// key of its per-client rates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Client {
    /// A network peer, by IP address (SMTP, gRPC): its port changes with every
    /// connection and must not give it a fresh allowance. An IPv6 peer is its network
    /// (see [`client_network`]).
    Peer(IpAddr),
    /// A client known by a name rather than an address (an API identity).
    Named(String),
    /// mailfwd itself (delivery status notifications): work that follows from mail
    /// already accepted, so the store's limits do not apply to it.
    #[default]
    Internal,
}

impl Client {
    /// The client behind a peer address written `ip:port` (or a bare IP), an IPv6 one
    /// by its /64 ([`DEFAULT_IPV6_CLIENT_PREFIX`]); a string that is neither names the
    /// client as it is.
    #[must_use]
    pub fn from_peer(peer: &str) -> Self {
        let ip = match peer.parse::<std::net::SocketAddr>() {
            Ok(address) => address.ip(),
            Err(_) => match peer.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => return Client::Named(peer.to_owned()),
            },
        };
        Client::from_ip(ip, DEFAULT_IPV6_CLIENT_PREFIX)
    }

    /// The client behind `ip`, an IPv6 one by its network of `ipv6_prefix` bits.
    #[must_use]
    pub fn from_ip(ip: IpAddr, ipv6_prefix: u8) -> Self {
        Client::Peer(client_network(ip, ipv6_prefix))
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Peer(ip) => write!(f, "{ip}"),
            Client::Named(name) => f.write_str(name),
            Client::Internal => f.write_str("mailfwd"),
        }
    }
}

/// Why the store refuses new mail for now (load shedding). Mail already accepted is
/// still delivered; the store accepts again by itself once the cause is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shedding {
    /// The disk holding the data has less free space than the floor kept for
    /// recording what happens to mail already accepted.
    DiskFull {
        /// Free bytes, as last measured.
        free: u64,
        /// The configured floor, in bytes.
        floor: u64,
    },
    /// More delivery jobs are pending than the configured maximum.
    Backlog {
        /// Pending jobs, as last counted.
        pending: u64,
        /// The configured maximum.
        max: u64,
    },
}

impl Shedding {
    /// A short label for metrics and logs: `disk` or `backlog`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Shedding::DiskFull { .. } => "disk",
            Shedding::Backlog { .. } => "backlog",
        }
    }
}

impl fmt::Display for Shedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shedding::DiskFull { free, floor } => write!(
                f,
                "{free} bytes free on the data disk, under the floor of {floor}"
            ),
            Shedding::Backlog { pending, max } => {
                write!(f, "{pending} deliveries pending, over the maximum of {max}")
            }
        }
    }
}

/// The delay to suggest while the store sheds load: it measures again every second,
/// but a disk does not free itself that fast, and a client retrying every second only
/// adds to the load.
pub const SHEDDING_RETRY_AFTER_SECS: u64 = 60;

/// Whole seconds to tell a client to wait, rounded up and at least one: protocols
/// carry seconds, and "retry after 0" invites an immediate retry.
#[must_use]
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_keyed_by_ip_without_the_port() {
        let first = Client::from_peer("127.0.0.2:40000");
        assert_eq!(first, Client::from_peer("127.0.0.2:40001"));
        assert_eq!(first.to_string(), "127.0.0.2");
        assert_eq!(
            Client::from_peer("[::ffff:192.0.2.1]:25"),
            Client::from_peer("192.0.2.1:25"),
            "an IPv4-mapped address is the IPv4 client"
        );
        assert_eq!(Client::from_peer("api"), Client::Named("api".into()));
    }

    #[test]
    fn an_ipv6_peer_is_its_network_so_a_host_cannot_hop_addresses() {
        let one = Client::from_peer("[2001:db8:1:2:aaaa::1]:40000");
        assert_eq!(one, Client::from_peer("[2001:db8:1:2:ffff::9]:40001"));
        assert_eq!(one.to_string(), "2001:db8:1:2::");
        assert_ne!(one, Client::from_peer("[2001:db8:1:3::1]:25"));
        assert_eq!(
            Client::from_ip("2001:db8::1".parse().unwrap(), 128),
            Client::Peer("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn retry_delays_round_up_to_a_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
