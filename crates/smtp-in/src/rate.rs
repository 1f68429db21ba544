//! How often one client may connect (Postfix's `smtpd_client_connection_rate_limit`):
//! a client that opens connections faster than its quota is answered `421` and the
//! connection closed. Clients are counted as in `limits`: one IPv4 address, or one IPv6
//! network.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::limits::client_of;

/// Connection attempts per client, per minute, with a burst of the whole minute's quota
/// (governor's GCRA: a client that stayed away may connect the full quota at once).
#[derive(Debug)]
pub(crate) struct ConnectionRate<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, HashMapStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    ipv6_prefix: u8,
}

impl ConnectionRate {
    /// At most `per_minute` connections a minute from one client.
    pub(crate) fn per_minute(per_minute: NonZeroU32, ipv6_prefix: u8) -> Self {
        ConnectionRate::with_clock(per_minute, ipv6_prefix, DefaultClock::default())
    }
}

impl<C: Clock> ConnectionRate<C> {
    fn with_clock(per_minute: NonZeroU32, ipv6_prefix: u8, clock: C) -> Self {
        ConnectionRate {
            limiter: RateLimiter::new(
                Quota::per_minute(per_minute),
                HashMapStateStore::default(),
                clock,
            ),
            ipv6_prefix,
        }
    }

    /// Counts a connection from `peer`; `false` if its client is over the quota (the
    /// refused attempt is not counted).
    pub(crate) fn allows(&self, peer: IpAddr) -> bool {
        self.limiter
            .check_key(&client_of(peer, self.ipv6_prefix))
            .is_ok()
    }

    /// Forgets clients whose quota has refilled completely: remembering them changes
    /// nothing, and a server that met many addresses would otherwise keep every one.
    pub(crate) fn forget_idle_clients(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many clients are remembered.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn rate(per_minute: u32, clock: &FakeRelativeClock) -> ConnectionRate<FakeRelativeClock> {
        let per_minute = NonZeroU32::new(per_minute).unwrap();
        ConnectionRate::with_clock(per_minute, 64, clock.clone())
    }

    #[test]
    fn a_client_over_its_quota_is_refused_and_others_are_not() {
        let clock = FakeRelativeClock::default();
        let rate = rate(3, &clock);
        let client: IpAddr = [192, 0, 2, 1].into();
        assert!(
            (0..3).all(|_| rate.allows(client)),
            "the minute's quota at once"
        );
        assert!(!rate.allows(client));
        assert!(rate.allows([192, 0, 2, 2].into()), "another client");
        // One more every 20 s (3 a minute).
        clock.advance(Duration::from_secs(19));
        assert!(!rate.allows(client));
        clock.advance(Duration::from_secs(1));
        assert!(rate.allows(client));
        assert!(!rate.allows(client));
    }

    #[test]
    fn ipv6_addresses_of_one_network_share_a_quota() {
        let clock = FakeRelativeClock::default();
        let rate = rate(2, &clock);
        let host = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last));
        assert!(rate.allows(host(1)));
        assert!(rate.allows(host(2)));
        assert!(!rate.allows(host(3)), "same /64, same quota");
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(rate.allows(other));
    }

    #[test]
    fn clients_whose_quota_refilled_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let rate = rate(60, &clock);
        for last in 0..=255 {
            assert!(rate.allows([198, 51, 100, last].into()));
        }
        assert!(rate.allows([192, 0, 2, 1].into()));
        assert_eq!(rate.remembered(), 257);
        rate.forget_idle_clients();
        assert_eq!(rate.remembered(), 257, "their quotas are not full yet");
        // Half a minute on, one client connects 30 times: its quota is half used.
        clock.advance(Duration::from_secs(30));
        assert!((0..30).all(|_| rate.allows([192, 0, 2, 1].into())));
        clock.advance(Duration::from_secs(15));
        rate.forget_idle_clients();
        assert_eq!(
            rate.remembered(),
            1,
            "only the client whose quota is not yet full"
        );
    }
}
