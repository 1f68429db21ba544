//! What one delivery attempt has spent against the MX limits (`mx_address_limit`,
//! `mx_session_limit`), the addresses it refused as private, and how it ends when no
//! server took the message.

use std::net::IpAddr;

use mailfwd_domain::delivery::{DeliveryOutcome, Outgoing};
use tracing::{info, warn};

use crate::config::MailerConfig;
use crate::private::non_public;
use crate::route::{Host, HostKind};

/// What one delivery attempt has spent, and what stopped it so far.
#[derive(Default)]
pub(crate) struct Spent {
    /// Addresses tried, and hosts whose lookup gave none (see `mx_address_limit`).
    pub(crate) addresses: usize,
    /// Sessions opened or reused (see `mx_session_limit`).
    pub(crate) sessions: usize,
    /// The last failure worth trying again later.
    pub(crate) last_error: Option<String>,
    /// The first address refused as not public.
    pub(crate) refused: Option<String>,
}

impl Spent {
    /// How an attempt that found no server to take the message ends: unreachable (to be
    /// tried later) if anything failed that may work later; permanent if the only
    /// addresses there were refused as private; unreachable with a generic text
    /// otherwise.
    pub(crate) fn outcome(self, domain: &str, message: &Outgoing) -> DeliveryOutcome {
        let outcome = match (self.last_error, self.refused) {
            // No server answered: the forwarder's memory of dead destinations counts it.
            (Some(text), _) => DeliveryOutcome::Unreachable(text),
            (None, Some(text)) => DeliveryOutcome::Permanent(text),
            (None, None) => {
                DeliveryOutcome::Unreachable(format!("no host to deliver to for {domain}"))
            }
        };
        info!(recipients = ?message.recipients, ?outcome, "all hosts failed");
        outcome
    }

    /// Whether the attempt may try one more address (`mx_address_limit`).
    pub(crate) fn may_try_address(&self, config: &MailerConfig) -> bool {
        let limit = config.mx_address_limit;
        limit == 0 || self.addresses < limit
    }

    /// Whether the attempt may open or reuse one more session (`mx_session_limit`).
    pub(crate) fn may_open_session(&self, config: &MailerConfig) -> bool {
        let limit = config.mx_session_limit;
        limit == 0 || self.sessions < limit
    }

    /// The addresses of `host` that may be connected to: all of them for a host the
    /// operator chose or when private destinations are allowed, else the public ones
    /// (see `private.rs`). The first refused one is noted.
    pub(crate) fn allowed(
        &mut self,
        config: &MailerConfig,
        host: &Host,
        addresses: Vec<IpAddr>,
    ) -> Vec<IpAddr> {
        if !host.public_only || config.deliver_to_private_addresses {
            return addresses;
        }
        let mut allowed = Vec::with_capacity(addresses.len());
        for ip in addresses {
            let Some(kind) = non_public(ip) else {
                allowed.push(ip);
                continue;
            };
            let what = match host.kind {
                HostKind::Exchange => "MX",
                HostKind::ImplicitMx => "host",
                HostKind::Ip(_) => "address literal",
                HostKind::Relay => "next hop",
            };
            let text = format!(
                "5.7.1 refusing to deliver to the {kind} address {} ({what} {})",
                ip.to_canonical(),
                host.name
            );
            warn!(host = %host.name, %ip, "not a public address; not connecting");
            self.refused.get_or_insert(text);
        }
        allowed
    }
}
