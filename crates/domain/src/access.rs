//! Who may use the admin APIs (HTTP `/v1`, gRPC): holders of the API token, or, when
//! no token is configured, only clients on a loopback address (the laptop default).
//! One policy, so HTTP and gRPC cannot drift apart.

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
}

/// The access policy of the admin APIs.
#[derive(Debug, Clone)]
pub struct ApiAccess {
    token: Option<String>,
}

impl ApiAccess {
    /// Requires `token` when it is `Some`; otherwise admits loopback callers only.
    #[must_use]
    pub fn new(token: Option<String>) -> Self {
        ApiAccess { token }
    }

    /// Decides on a call given its `authorization` value (`Bearer <token>`, the scheme
    /// case-insensitive) and the caller's address (`None` for an in-process transport,
    /// which is as local as it gets).
    ///
    /// # Errors
    /// [`Denied`] saying why the call may not proceed.
    pub fn check(&self, authorization: Option<&str>, peer: Option<IpAddr>) -> Result<(), Denied> {
        match &self.token {
            Some(token) => match authorization.and_then(bearer_token) {
                None => Err(Denied::MissingToken),
                Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
                Some(_) => Err(Denied::WrongToken),
            },
            None if peer.is_some_and(|ip| !ip.to_canonical().is_loopback()) => {
                Err(Denied::RemoteWithoutToken)
            }
            None => Ok(()),
        }
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
        assert_eq!(access.check(Some("Bearer s3cret"), REMOTE), Ok(()));
        assert_eq!(access.check(Some("bearer  s3cret "), LOCAL), Ok(()));
        assert_eq!(
            access.check(Some("Bearer s3creT"), LOCAL),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            access.check(Some("Bearer s3cret2"), LOCAL),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            access.check(Some("Basic s3cret"), LOCAL),
            Err(Denied::MissingToken)
        );
        assert_eq!(access.check(None, LOCAL), Err(Denied::MissingToken));
    }

    #[test]
    fn without_a_token_only_loopback_passes() {
        let access = ApiAccess::new(None);
        assert_eq!(access.check(None, LOCAL), Ok(()));
        assert_eq!(access.check(None, None), Ok(()));
        let mapped = "::ffff:127.0.0.1".parse().ok();
        assert_eq!(access.check(None, mapped), Ok(()));
        assert_eq!(
            access.check(Some("Bearer x"), REMOTE),
            Err(Denied::RemoteWithoutToken)
        );
    }
}
