//! The addresses mailfwd answers for itself, besides those its rules forward: the SRS
//! addresses bounces come back to (ADR 0018) and `postmaster` (RFC 5321 §4.5.1).
//!
//! One type, so that the recipient policy at RCPT, the evaluator that routes accepted
//! mail and the deliverer that picks the envelope sender cannot disagree on which
//! address is which.

use std::time::SystemTime;

use crate::address::{Domain, EmailAddress};
use crate::srs::{Srs, SrsError};

/// The local part every mail domain must accept (RFC 5321 §4.5.1), in any case.
pub const POSTMASTER: &str = "postmaster";

/// mailfwd's own addresses and where mail to them goes.
#[derive(Debug, Clone)]
pub struct OwnAddresses {
    srs: Srs,
    hostname: Domain,
    postmaster: Option<EmailAddress>,
}

impl OwnAddresses {
    /// Our addresses: SRS addresses of `srs`, and `postmaster` at `hostname` (which
    /// `<postmaster>` without a domain stands for), forwarded to `postmaster`.
    #[must_use]
    pub fn new(srs: Srs, hostname: Domain, postmaster: Option<EmailAddress>) -> Self {
        OwnAddresses {
            srs,
            hostname,
            postmaster,
        }
    }

    /// The sender rewriter.
    #[must_use]
    pub fn srs(&self) -> &Srs {
        &self.srs
    }

    /// The host name mailfwd greets with.
    #[must_use]
    pub fn hostname(&self) -> &Domain {
        &self.hostname
    }

    /// The address `RCPT TO:<postmaster>` (no domain) stands for: postmaster at our
    /// host name.
    #[must_use]
    pub fn bare_postmaster(&self) -> EmailAddress {
        EmailAddress::parse(&format!("{POSTMASTER}@{}", self.hostname))
            .expect("postmaster at a valid domain is a valid address")
    }

    /// Whether `address` is in the SRS domain with an `SRS0`/`SRS1` local part: a
    /// bounce coming back, whether or not its hash verifies.
    #[must_use]
    pub fn is_srs_address(&self, address: &EmailAddress) -> bool {
        address.domain() == self.srs.domain() && Srs::is_tagged(address.local_part())
    }

    /// Whether `address` names a postmaster: its local part is `postmaster`, in any
    /// case, whatever its domain.
    #[must_use]
    pub fn is_postmaster(address: &EmailAddress) -> bool {
        address.local_part().eq_ignore_ascii_case(POSTMASTER)
    }

    /// Whether `domain` is one of mailfwd's own names (its host name or SRS domain),
    /// where postmaster is ours whatever the rules say.
    #[must_use]
    pub fn is_own_domain(&self, domain: &Domain) -> bool {
        domain == &self.hostname || domain == self.srs.domain()
    }

    /// Where a bounce to `address` (an SRS address of ours, see
    /// [`OwnAddresses::is_srs_address`]) goes: the address it reverses to, if its hash
    /// verifies and it has not expired at `now`.
    ///
    /// # Errors
    /// [`SrsError`] saying why it is refused.
    pub fn bounce_to(
        &self,
        address: &EmailAddress,
        now: SystemTime,
    ) -> Result<EmailAddress, SrsError> {
        self.srs.reverse(address, now)
    }

    /// Where mail to the postmaster goes, when no rule says otherwise.
    #[must_use]
    pub fn postmaster(&self) -> Option<&EmailAddress> {
        self.postmaster.as_ref()
    }

    /// Whether an email to `recipients` is a bounce coming back through an SRS address:
    /// it is sent on with the null sender, and its own failure is reported to no one.
    #[must_use]
    pub fn is_bounce(&self, recipients: &[EmailAddress]) -> bool {
        recipients
            .iter()
            .any(|recipient| self.is_srs_address(recipient))
    }

    /// The envelope sender to forward an email from `sender` to `recipients` with: the
    /// null sender for a bounce coming back, else `sender` rewritten by SRS.
    #[must_use]
    pub fn forward_sender(
        &self,
        sender: Option<&EmailAddress>,
        recipients: &[EmailAddress],
        now: SystemTime,
    ) -> Option<EmailAddress> {
        if self.is_bounce(recipients) {
            return None;
        }
        self.srs.forward(sender, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> EmailAddress {
        EmailAddress::parse_rewritten(text).unwrap()
    }

    fn own() -> OwnAddresses {
        let srs = Srs::new(
            Domain::parse("fwd.test").unwrap(),
            vec!["secret".into()],
            21,
        )
        .unwrap();
        OwnAddresses::new(
            srs,
            Domain::parse("mx.fwd.test").unwrap(),
            Some(address("admin@acme.test")),
        )
    }

    #[test]
    fn forwarded_senders_are_rewritten_and_bounces_go_out_with_the_null_sender() {
        let own = own();
        let now = SystemTime::now();
        let alice = address("alice@sender.test");
        let rewritten = own
            .forward_sender(Some(&alice), &[address("sales@acme.test")], now)
            .unwrap();
        assert!(rewritten.local_part().starts_with("SRS0="), "{rewritten}");
        assert_eq!(rewritten.domain().as_str(), "fwd.test");
        assert!(own.is_srs_address(&rewritten));
        assert_eq!(own.bounce_to(&rewritten, now).unwrap(), alice);
        // A bounce coming back: whatever its sender, it goes on with the null sender.
        assert_eq!(own.forward_sender(Some(&alice), &[rewritten], now), None);
        assert_eq!(own.forward_sender(None, &[alice], now), None);
    }

    #[test]
    fn srs_addresses_are_ours_only_in_the_srs_domain() {
        let own = own();
        assert!(own.is_srs_address(&address("srs0=abcd=AB=x.test=a@fwd.test")));
        assert!(!own.is_srs_address(&address("SRS0=abcd=AB=x.test=a@other.test")));
        assert!(!own.is_srs_address(&address("sales@fwd.test")));
    }

    #[test]
    fn postmaster_is_recognised_in_any_case_and_bare_means_our_host_name() {
        let own = own();
        assert!(OwnAddresses::is_postmaster(&address(
            "PostMaster@acme.test"
        )));
        assert!(!OwnAddresses::is_postmaster(&address(
            "postmasters@acme.test"
        )));
        assert_eq!(own.bare_postmaster().to_string(), "postmaster@mx.fwd.test");
        assert!(own.is_own_domain(&Domain::parse("MX.fwd.test").unwrap()));
        assert!(own.is_own_domain(&Domain::parse("fwd.test").unwrap()));
        assert!(!own.is_own_domain(&Domain::parse("acme.test").unwrap()));
    }
}
