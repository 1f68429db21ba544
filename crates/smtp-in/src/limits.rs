//! How many connections may be open at once, in total and per client. A client is an
//! IPv4 address, or an IPv6 network of a configurable prefix (/64 by default): one
//! host on IPv6 commonly holds a whole /64, so counting single addresses would let it
//! take every slot. The total also drives the stress signal (see `stress`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::stress::StressGauge;

/// The client `peer` counts as: its IPv4 address (an IPv4-mapped IPv6 address is
/// IPv4), or its IPv6 network of `ipv6_prefix` bits (the store's notion too).
pub(crate) fn client_of(peer: IpAddr, ipv6_prefix: u8) -> IpAddr {
    mailfwd_domain::email::client_network(peer, ipv6_prefix)
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Total,
    PerPeer,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// Counts open connections; a [`Permit`] holds one place until it is dropped.
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    max_total: usize,
    max_per_peer: usize,
    /// IPv6 addresses sharing this many leading bits count as one client.
    ipv6_prefix: u8,
    counts: Mutex<Counts>,
    stress: StressGauge,
}

impl ConnectionLimits {
    /// Limits of `max_total` connections, `max_per_peer` from one client, under stress
    /// from `stress_threshold` open connections on.
    pub(crate) fn new(
        max_total: usize,
        max_per_peer: usize,
        ipv6_prefix: u8,
        stress_threshold: usize,
    ) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_peer,
            ipv6_prefix: ipv6_prefix.min(128),
            counts: Mutex::default(),
            stress: StressGauge::new(stress_threshold),
        })
    }

    /// The stress signal: `true` while the open connections reach the threshold.
    pub(crate) fn stress(&self) -> watch::Receiver<bool> {
        self.stress.subscribe()
    }

    /// Takes a place for a connection from `peer`, if both limits allow one more.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let peer = client_of(peer, self.ipv6_prefix);
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(Refused::Total);
        }
        if counts.per_peer.get(&peer).copied().unwrap_or(0) >= self.max_per_peer {
            return Err(Refused::PerPeer);
        }
        *counts.per_peer.entry(peer).or_insert(0) += 1;
        counts.total += 1;
        self.stress.record(counts.total);
        Ok(Permit {
            limits: Arc::clone(self),
            peer,
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Each critical section is a few integer updates that cannot panic halfway.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Permit {
    limits: Arc<ConnectionLimits>,
    peer: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total = counts.total.saturating_sub(1);
        self.limits.stress.record(counts.total);
        if let Some(from_peer) = counts.per_peer.get_mut(&self.peer) {
            *from_peer = from_peer.saturating_sub(1);
            if *from_peer == 0 {
                counts.per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn limits_count_per_peer_and_in_total_and_free_on_drop() {
        let limits = ConnectionLimits::new(3, 2, 64, 3);
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let first = limits.admit(a).expect("first");
        let _second = limits.admit(a).expect("second");
        assert_eq!(limits.admit(a).err(), Some(Refused::PerPeer));
        let _third = limits.admit(b).expect("other peer");
        assert_eq!(limits.admit(b).err(), Some(Refused::Total));
        drop(first);
        assert!(limits.admit(a).is_ok());
        assert!(limits.counts().per_peer.len() <= 2);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_network() {
        let limits = ConnectionLimits::new(100, 2, 64, 100);
        let host = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last));
        let _a = limits.admit(host(1)).expect("first of the /64");
        let _b = limits.admit(host(2)).expect("second of the /64");
        // A third address of the same /64 is the same client.
        assert_eq!(limits.admit(host(3)).err(), Some(Refused::PerPeer));
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(limits.admit(other).is_ok(), "another /64 is another client");
        // IPv4-mapped addresses are IPv4 clients.
        let v4: IpAddr = [192, 0, 2, 9].into();
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        let _c = limits.admit(v4).expect("v4");
        let _d = limits.admit(mapped).expect("mapped, same client");
        assert_eq!(limits.admit(v4).err(), Some(Refused::PerPeer));
        // With /128, every address is its own client.
        let per_address = ConnectionLimits::new(100, 1, 128, 100);
        let _e = per_address.admit(host(1)).expect("one");
        assert!(per_address.admit(host(2)).is_ok());
    }

    #[test]
    fn open_connections_at_the_threshold_signal_stress_until_one_closes() {
        let limits = ConnectionLimits::new(10, 10, 64, 2);
        let stress = limits.stress();
        let peer: IpAddr = [192, 0, 2, 1].into();
        let first = limits.admit(peer).expect("first");
        assert!(!*stress.borrow());
        let second = limits.admit(peer).expect("second");
        assert!(*stress.borrow(), "two open: the threshold");
        drop(first);
        assert!(!*stress.borrow(), "one closed: below three quarters of it");
        drop(second);
        assert!(limits.counts().per_peer.is_empty());
    }
}
