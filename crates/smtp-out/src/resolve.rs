//! Turning a recipient domain into the hosts to try and their addresses: the relay,
//! an address literal, or DNS (MX, then A/AAAA), with each DNS answer sorted into
//! "no such domain" (permanent), "try the next host" or "try again later".

use std::collections::HashMap;
use std::net::IpAddr;

use mailfwd_domain::delivery::DeliveryOutcome;

use crate::dns::{Dns, DnsFailure};
use crate::route::{Host, HostKind, MxPlan, address_literal, plan_mx};

/// Finds hosts for a domain; one per mailer.
pub(crate) struct Router {
    /// Next hops by exact domain (lower case), before the relay and MX.
    pub(crate) routes: HashMap<String, Host>,
    pub(crate) relay: Option<Host>,
    pub(crate) dns: Option<Dns>,
    /// The port of MX hosts and address literals.
    pub(crate) port: u16,
}

/// Why no connection could be made to one host.
pub(crate) enum Unreachable {
    /// The domain cannot receive mail at all.
    Permanent(String),
    /// Try the next host.
    Skip(String),
}

impl Router {
    /// The hosts to try for `domain`, best first: its route, else the relay, else the
    /// address literal or the domain's MX.
    ///
    /// # Errors
    /// The outcome of the delivery when there is no host to try: permanent for a
    /// domain that does not exist or accepts no mail, transient when DNS failed.
    /// The next hop mail for `domain` goes to, as the forwarder schedules it (ADR 0016):
    /// the route's or the relay's host (every domain it takes shares its concurrency
    /// and its memory of failures), otherwise the domain, whose MX hosts are the hop.
    pub(crate) fn destination(&self, domain: &str) -> String {
        let domain = domain.to_ascii_lowercase();
        match self.routes.get(&domain).or(self.relay.as_ref()) {
            Some(host) => host.pool_key(),
            None => domain,
        }
    }

    pub(crate) async fn hosts(&self, domain: &str) -> Result<Vec<Host>, DeliveryOutcome> {
        let port = self.port;
        if let Some(route) = self.routes.get(&domain.to_ascii_lowercase()) {
            return Ok(vec![route.clone()]);
        }
        if let Some(relay) = &self.relay {
            return Ok(vec![relay.clone()]);
        }
        if domain.starts_with('[') {
            return match address_literal(domain) {
                Some(ip) => Ok(vec![Host {
                    name: domain.to_owned(),
                    port,
                    kind: HostKind::Ip(ip),
                    public_only: true,
                }]),
                None => Err(DeliveryOutcome::Permanent(format!(
                    "{domain} is not a valid address literal"
                ))),
            };
        }
        let Some(dns) = &self.dns else {
            return Err(DeliveryOutcome::Transient("no DNS resolver".to_owned()));
        };
        let records = match dns.mx(domain).await {
            Ok(records) => records,
            Err(DnsFailure::NoSuchName) => {
                return Err(DeliveryOutcome::Permanent(format!(
                    "domain {domain} does not exist (NXDOMAIN)"
                )));
            }
            Err(DnsFailure::NoRecords) => Vec::new(),
            Err(DnsFailure::Temporary(error)) => {
                return Err(DeliveryOutcome::Transient(format!(
                    "MX lookup for {domain} failed: {error}"
                )));
            }
        };
        let host = |name: String, kind| Host {
            name,
            port,
            kind,
            public_only: true,
        };
        match plan_mx(records) {
            MxPlan::Null => Err(DeliveryOutcome::Permanent(format!(
                "domain {domain} does not accept mail (null MX, RFC 7505)"
            ))),
            MxPlan::Implicit => Ok(vec![host(domain.to_owned(), HostKind::ImplicitMx)]),
            MxPlan::Exchanges(names) => Ok(names
                .into_iter()
                .map(|name| host(name, HostKind::Exchange))
                .collect()),
        }
    }

    /// The addresses of `host`, each once, in the order found.
    ///
    /// # Errors
    /// [`Unreachable::Permanent`] when an implicit-MX domain has no address,
    /// [`Unreachable::Skip`] when this host cannot be used but another may.
    pub(crate) async fn addresses(&self, host: &Host) -> Result<Vec<IpAddr>, Unreachable> {
        let name = &host.name;
        let addresses = match (host.kind, &self.dns) {
            (HostKind::Ip(ip), _) => vec![ip],
            (HostKind::Relay, _) => tokio::net::lookup_host((name.as_str(), host.port))
                .await
                .map(|found| found.map(|addr| addr.ip()).collect())
                .map_err(|error| {
                    Unreachable::Skip(format!("cannot resolve the next hop {name}: {error}"))
                })?,
            (_, None) => Vec::new(),
            (kind, Some(dns)) => match (dns.addresses(name).await, kind) {
                (Ok(found), _) => found,
                (Err(DnsFailure::Temporary(error)), _) => {
                    return Err(Unreachable::Skip(format!(
                        "address lookup for {name} failed: {error}"
                    )));
                }
                (Err(_), HostKind::ImplicitMx) => {
                    return Err(Unreachable::Permanent(format!(
                        "domain {name} has no MX and no A/AAAA records"
                    )));
                }
                (Err(_), _) => Vec::new(),
            },
        };
        let mut unique: Vec<IpAddr> = Vec::with_capacity(addresses.len());
        for address in addresses {
            if !unique.contains(&address) {
                unique.push(address);
            }
        }
        if unique.is_empty() {
            return Err(Unreachable::Skip(format!("host {name} has no address")));
        }
        Ok(unique)
    }
}
