//! Where a message goes: the relay host, an address literal, or the recipient domain's
//! mail exchangers in preference order (RFC 5321 §5.1), with the null MX of RFC 7505.
//!
//! This file holds the decisions; `dns.rs` asks the questions.

use std::net::IpAddr;

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Host {
    /// The name as found (MX exchange, relay host, the domain itself), or `[ip]`.
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) kind: HostKind,
    /// The destination chose this host (an MX, the domain itself, an address
    /// literal), not the operator (the relay, a route): its addresses must be public
    /// unless private destinations are allowed.
    pub(crate) public_only: bool,
}

/// How a host's addresses are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostKind {
    /// An address literal or a relay given as an address: no lookup.
    Ip(IpAddr),
    /// An MX exchange: A/AAAA lookup; if it fails, the next host is tried.
    Exchange,
    /// The domain itself, as there is no MX (implicit MX): no address means the domain
    /// cannot receive mail.
    ImplicitMx,
    /// The relay host or a route's host, named by the operator: the system's resolver,
    /// so `/etc/hosts` and search domains apply.
    Relay,
}

impl Host {
    /// The key of this host's idle connections.
    pub(crate) fn pool_key(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }
}

/// What the MX records of a domain say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MxPlan {
    /// The domain has no MX records: use the domain itself.
    Implicit,
    /// The domain says it accepts no mail (RFC 7505).
    Null,
    /// The exchanges to try, best first.
    Exchanges(Vec<String>),
}

/// Orders MX records: lowest preference first, random among equal preferences
/// (RFC 5321 §5.1), duplicates dropped. A record whose exchange is the root (`.` or
/// empty) is a null MX: alone, it means no mail; beside real records it is ignored.
pub(crate) fn plan_mx(records: Vec<(u16, String)>) -> MxPlan {
    if records.is_empty() {
        return MxPlan::Implicit;
    }
    let mut records: Vec<(u16, String)> = records
        .into_iter()
        .map(|(preference, exchange)| {
            let exchange = exchange.trim_end_matches('.').to_ascii_lowercase();
            (preference, exchange)
        })
        .collect();
    records.retain(|(_, exchange)| !exchange.is_empty());
    if records.is_empty() {
        return MxPlan::Null;
    }
    fastrand::shuffle(&mut records);
    // A stable sort keeps the shuffled order among equal preferences.
    records.sort_by_key(|(preference, _)| *preference);
    let mut exchanges: Vec<String> = Vec::with_capacity(records.len());
    for (_, exchange) in records {
        if !exchanges.contains(&exchange) {
            exchanges.push(exchange);
        }
    }
    MxPlan::Exchanges(exchanges)
}

/// The IP address in an address-literal domain: `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub(crate) fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &inner[5..],
        _ => inner,
    };
    inner.parse().ok()
}

/// Reads a relay setting or a route's next hop: `host`, `host:port`, `192.0.2.1:587`, `[2001:db8::1]:25`
/// or a bare IPv6 address; a missing port is `default_port`. `None` if malformed.
pub(crate) fn parse_relay(relay: &str, default_port: u16) -> Option<Host> {
    let relay = relay.trim();
    let (host, port) = if let Some(rest) = relay.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => default_port,
            _ => after.strip_prefix(':')?.parse().ok()?,
        };
        (host, port)
    } else if relay.parse::<IpAddr>().is_ok() {
        (relay, default_port)
    } else {
        match relay.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (relay, default_port),
        }
    };
    let valid_name = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    let kind = match host.parse::<IpAddr>() {
        Ok(ip) => HostKind::Ip(ip),
        Err(_) if valid_name(host) => HostKind::Relay,
        Err(_) => return None,
    };
    Some(Host {
        name: host.to_owned(),
        port,
        kind,
        public_only: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(records: &[(u16, &str)]) -> MxPlan {
        plan_mx(
            records
                .iter()
                .map(|(preference, name)| (*preference, (*name).to_owned()))
                .collect(),
        )
    }

    fn exchanges(names: &[&str]) -> MxPlan {
        MxPlan::Exchanges(names.iter().map(|name| (*name).to_owned()).collect())
    }

    #[test]
    fn exchanges_come_in_preference_order() {
        assert_eq!(
            mx(&[(20, "b.example."), (5, "A.example."), (10, "c.example.")]),
            exchanges(&["a.example", "c.example", "b.example"])
        );
    }

    #[test]
    fn equal_preferences_are_shuffled() {
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..200 {
            let MxPlan::Exchanges(order) = mx(&[(10, "a."), (10, "b."), (20, "z.")]) else {
                panic!("expected exchanges");
            };
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], "z");
            seen_first.insert(order[0].clone());
        }
        assert_eq!(
            seen_first.len(),
            2,
            "both equal-preference hosts come first sometimes"
        );
    }

    #[test]
    fn null_mx_and_no_mx() {
        assert_eq!(mx(&[(0, ".")]), MxPlan::Null);
        assert_eq!(mx(&[(0, "")]), MxPlan::Null);
        assert_eq!(mx(&[]), MxPlan::Implicit);
        assert_eq!(
            mx(&[(0, "."), (10, "mx.example.")]),
            exchanges(&["mx.example"])
        );
        assert_eq!(mx(&[(10, "mx."), (20, "MX.")]), exchanges(&["mx"]));
    }

    #[test]
    fn address_literals() {
        assert_eq!(address_literal("[192.0.2.1]"), "192.0.2.1".parse().ok());
        assert_eq!(
            address_literal("[IPv6:2001:db8::1]"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(address_literal("example.com"), None);
        assert_eq!(address_literal("[not an ip]"), None);
    }

    #[test]
    fn relays() {
        let relay = |s| parse_relay(s, 25).map(|h| (h.name, h.port, h.kind));
        assert_eq!(
            relay("smtp.example.com:587"),
            Some(("smtp.example.com".into(), 587, HostKind::Relay))
        );
        assert_eq!(relay("smtp"), Some(("smtp".into(), 25, HostKind::Relay)));
        let v4: IpAddr = "192.0.2.1".parse().expect("an address");
        assert_eq!(
            relay("192.0.2.1:2525"),
            Some(("192.0.2.1".into(), 2525, HostKind::Ip(v4)))
        );
        let v6: IpAddr = "::1".parse().expect("an address");
        assert_eq!(
            relay("[::1]:2525"),
            Some(("::1".into(), 2525, HostKind::Ip(v6)))
        );
        assert_eq!(relay("::1"), Some(("::1".into(), 25, HostKind::Ip(v6))));
        assert_eq!(relay("host:port"), None);
        assert_eq!(relay(""), None);
        assert_eq!(relay("a b:25"), None);
        assert_eq!(relay("[::1]x"), None);
    }
}
