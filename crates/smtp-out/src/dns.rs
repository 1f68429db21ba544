//! The DNS questions routing asks, on hickory-resolver: MX records of a domain and the
//! addresses of a host. Answers are sorted into what they mean for a delivery: the name
//! does not exist, it exists without such records, or DNS failed for now.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::{ResolverBuilder, TokioResolver};

use crate::error::MailerError;

/// A DNS answer that holds nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DnsFailure {
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// The name exists but has no records of the type asked for.
    NoRecords,
    /// Timeout, SERVFAIL, refused, unreachable server: worth asking again later.
    Temporary(String),
}

/// The resolver used for MX routing.
pub(crate) struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// A resolver configured like the system's (`/etc/resolv.conf`).
    ///
    /// # Errors
    /// [`MailerError::Resolver`] if the system configuration cannot be read.
    pub(crate) fn system(timeout: Duration) -> Result<Self, MailerError> {
        let builder = TokioResolver::builder_tokio().map_err(resolver_error)?;
        Self::build(builder, timeout)
    }

    /// A resolver that asks the given name servers (UDP, TCP when needed).
    ///
    /// # Errors
    /// [`MailerError::Resolver`] if the resolver cannot be built.
    pub(crate) fn with_name_servers(
        servers: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Self, MailerError> {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        Self::build(builder, timeout)
    }

    fn build(
        mut builder: ResolverBuilder<TokioRuntimeProvider>,
        timeout: Duration,
    ) -> Result<Self, MailerError> {
        let options = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 2;
        // Both families, IPv4 first: many hosts have no working IPv6 route.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let resolver = builder.build().map_err(resolver_error)?;
        Ok(Dns { resolver })
    }

    /// The MX records of `domain` as (preference, exchange); empty when the domain
    /// exists but has none.
    ///
    /// # Errors
    /// [`DnsFailure::NoSuchName`] or [`DnsFailure::Temporary`].
    pub(crate) async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsFailure> {
        let name = fqdn(domain)?;
        match self.resolver.mx_lookup(name).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect()),
            Err(error) => match classify(&error) {
                DnsFailure::NoRecords => Ok(Vec::new()),
                failure => Err(failure),
            },
        }
    }

    /// The A and AAAA addresses of `host`, IPv4 first.
    ///
    /// # Errors
    /// [`DnsFailure`] when there are none or DNS failed.
    pub(crate) async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        let name = fqdn(host)?;
        match self.resolver.lookup_ip(name).await {
            Ok(lookup) => {
                let addresses: Vec<IpAddr> = lookup.iter().collect();
                if addresses.is_empty() {
                    Err(DnsFailure::NoRecords)
                } else {
                    Ok(addresses)
                }
            }
            Err(error) => Err(classify(&error)),
        }
    }
}

/// `name.` so that no search domain is appended.
fn fqdn(name: &str) -> Result<Name, DnsFailure> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|error| DnsFailure::Temporary(format!("'{name}' is not a DNS name: {error}")))
}

fn classify(error: &NetError) -> DnsFailure {
    if error.is_nx_domain() {
        DnsFailure::NoSuchName
    } else if error.is_no_records_found() {
        DnsFailure::NoRecords
    } else {
        DnsFailure::Temporary(error.to_string())
    }
}

fn resolver_error(error: NetError) -> MailerError {
    MailerError::Resolver(Box::new(error))
}
