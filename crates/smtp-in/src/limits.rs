//! How many connections may be open at once, in total and per client IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
    counts: Mutex<Counts>,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: usize, max_per_peer: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_peer,
            counts: Mutex::default(),
        })
    }

    /// Takes a place for a connection from `peer`, if both limits allow one more.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(Refused::Total);
        }
        if counts.per_peer.get(&peer).copied().unwrap_or(0) >= self.max_per_peer {
            return Err(Refused::PerPeer);
        }
        *counts.per_peer.entry(peer).or_insert(0) += 1;
        counts.total += 1;
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

    #[test]
    fn limits_count_per_peer_and_in_total_and_free_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
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
}
