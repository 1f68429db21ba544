//! Who may use the admin APIs (HTTP `/v1`, gRPC): holders of the API token, or, when
//! no token is configured, only clients on a loopback address (the laptop default) that
//! name a loopback host. One policy, so HTTP and gRPC cannot drift apart.
//!
//! The host check stops DNS rebinding: a web page in a browser on the same machine can
//! point its own name at 127.0.0.1 and reach the tokenless API from a loopback address,
//! but its requests still carry its own name in `Host`.

use std::net::IpAddr;

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A token is required and none (or no `Bearer` one) was sent.
    MissingToken,
    /// A token was sent and it is not the configured one.
    WrongToken,
    /// No token is configured and the caller is not on a loopback address.
    RemoteWithoutToken,
    /// No token is configured and the request names a host that is neither a loopback
    /// name nor one of the allowed hosts (DNS rebinding).
    ForeignHost,
}

/// The access policy of the admin APIs.
#[derive(Debug, Clone)]
pub struct ApiAccess {
    token: Option<String>,
    /// Host names accepted besides loopback ones when no token is set, lower case.
    allowed_hosts: Vec<String>,
}

impl ApiAccess {
    /// Requires `token` when it is `Some`; otherwise admits loopback callers naming a
    /// loopback host only.
    #[must_use]
    pub fn new(token: Option<String>) -> Self {
        ApiAccess {
            token,
            allowed_hosts: Vec::new(),
        }
    }

    /// Also accepts requests naming these hosts (without a port) when no token is set.
    #[must_use]
    pub fn with_allowed_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.allowed_hosts = hosts
            .into_iter()
            .map(|host| host.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|host| !host.is_empty())
            .collect();
        self
    }

    /// Decides on a call given its `authorization` value (`Bearer <token>`, the scheme
    /// case-insensitive), the caller's address (`None` for an in-process transport,
    /// which is as local as it gets) and the host the request names (HTTP `Host`,
    /// with or without a port; `None` when the protocol carries none).
    ///
    /// # Errors
    /// [`Denied`] saying why the call may not proceed.
    pub fn check(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
        host: Option<&str>,
    ) -> Result<(), Denied> {
        match &self.token {
            Some(token) => match authorization.and_then(bearer_token) {
                None => Err(Denied::MissingToken),
                Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
                Some(_) => Err(Denied::WrongToken),
            },
            None if peer.is_some_and(|ip| !ip.to_canonical().is_loopback()) => {
                Err(Denied::RemoteWithoutToken)
            }
            None if host.is_some_and(|host| !self.host_allowed(host)) => Err(Denied::ForeignHost),
            None => Ok(()),
        }
    }

    /// `localhost`, a name under `.localhost` (RFC 6761: never resolved through DNS), a
    /// loopback IP literal, or an allowed host.
    fn host_allowed(&self, host: &str) -> bool {
        let name = without_port(host.trim())
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        name == "localhost"
            || name.ends_with(".localhost")
            || literal
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
            || self.allowed_hosts.contains(&name)
    }
}

/// `host` of `host:port`, `[v6]` of `[v6]:port`.
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The token of `Bearer <token>`.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// an attacker how much of a guess was right. Only the length can leak.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const REMOTE: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)));

    #[test]
    fn with_a_token_only_the_right_bearer_token_passes() {
        let access = ApiAccess::new(Some("s3cret".into()));
        assert_eq!(
            access.check(Some("Bearer s3cret"), REMOTE, Some("mx.example")),
            Ok(())
        );
        assert_eq!(access.check(Some("bearer  s3cret "), LOCAL, None), Ok(()));
        assert_eq!(
            access.check(Some("Bearer s3creT"), LOCAL, None),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            access.check(Some("Bearer s3cret2"), LOCAL, None),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            access.check(Some("Basic s3cret"), LOCAL, None),
            Err(Denied::MissingToken)
        );
        assert_eq!(access.check(None, LOCAL, None), Err(Denied::MissingToken));
    }

    #[test]
    fn without_a_token_only_loopback_passes() {
        let access = ApiAccess::new(None);
        assert_eq!(access.check(None, LOCAL, None), Ok(()));
        assert_eq!(access.check(None, None, None), Ok(()));
        let mapped = "::ffff:127.0.0.1".parse().ok();
        assert_eq!(access.check(None, mapped, None), Ok(()));
        assert_eq!(
            access.check(Some("Bearer x"), REMOTE, None),
            Err(Denied::RemoteWithoutToken)
        );
    }

    #[test]
    fn without_a_token_the_request_must_name_a_loopback_or_allowed_host() {
        let access = ApiAccess::new(None).with_allowed_hosts(["Admin.Example.".to_owned()]);
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
            "admin.example",
            "admin.example:8080",
        ] {
            assert_eq!(access.check(None, LOCAL, Some(host)), Ok(()), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "192.0.2.7",
            "[2001:db8::1]:8080",
            "",
        ] {
            assert_eq!(
                access.check(None, LOCAL, Some(host)),
                Err(Denied::ForeignHost),
                "{host}"
            );
        }
        // With a token, the token decides: a rebinding page does not have it.
        let access = ApiAccess::new(Some("s3cret".into()));
        assert_eq!(
            access.check(Some("Bearer s3cret"), LOCAL, Some("mx.example")),
            Ok(())
        );
    }
}
