//! Forwarding rules: which recipient pattern goes to which destinations.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::address::{AddressError, Domain, EmailAddress};

/// How many destinations a rule may have unless configured otherwise.
pub const DEFAULT_MAX_DESTINATIONS: usize = 10;

/// The local part that marks a catch-all pattern (`*@domain`).
const CATCH_ALL: &str = "*";

/// Which recipients a rule applies to.
///
/// Precedence when resolving a recipient: an exact rule for the address, then the
/// exact rule for the address without its `+tag`, then the domain's catch-all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RecipientPattern {
    /// Exactly one address (compared case-insensitively, see [`EmailAddress::match_key`]).
    Exact(EmailAddress),
    /// Every address at a domain: `*@domain`.
    CatchAll(Domain),
}

impl RecipientPattern {
    /// Parses `*@domain` as a catch-all and anything else as an exact address.
    ///
    /// # Errors
    /// Returns the [`AddressError`] of the address or domain.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let pattern = match input.split_once('@') {
            Some((CATCH_ALL, domain)) => RecipientPattern::CatchAll(Domain::parse(domain)?),
            _ => RecipientPattern::Exact(EmailAddress::parse(input)?),
        };
        // SMTP refuses `RCPT TO:<user@[192.0.2.1]>`, so such a rule could never match.
        if pattern.domain().is_address_literal() {
            return Err(AddressError::LiteralInRule(pattern.domain().to_string()));
        }
        Ok(pattern)
    }

    /// The domain the pattern belongs to.
    #[must_use]
    pub fn domain(&self) -> &Domain {
        match self {
            RecipientPattern::Exact(address) => address.domain(),
            RecipientPattern::CatchAll(domain) => domain,
        }
    }

    /// The unique key of the pattern in a store: `match_key` of the address, or `*@domain`.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            RecipientPattern::Exact(address) => address.match_key(),
            RecipientPattern::CatchAll(domain) => format!("{CATCH_ALL}@{domain}"),
        }
    }

    /// The keys of the patterns that could match `recipient`, in order of precedence.
    /// Every store resolves with this list, so precedence is decided here and only here.
    #[must_use]
    pub fn candidate_keys(recipient: &EmailAddress) -> Vec<String> {
        let mut keys = vec![recipient.match_key()];
        if let Some(base) = recipient.without_subaddress() {
            keys.push(base.match_key());
        }
        keys.push(RecipientPattern::CatchAll(recipient.domain().clone()).key());
        keys
    }
}

impl fmt::Display for RecipientPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientPattern::Exact(address) => address.fmt(f),
            RecipientPattern::CatchAll(domain) => write!(f, "{CATCH_ALL}@{domain}"),
        }
    }
}

impl TryFrom<String> for RecipientPattern {
    type Error = AddressError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RecipientPattern::parse(&value)
    }
}

impl From<RecipientPattern> for String {
    fn from(value: RecipientPattern) -> Self {
        value.to_string()
    }
}

/// Why a rule cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidRule {
    /// The rule has no destination.
    #[error("a rule needs at least one destination")]
    NoDestination,
    /// More destinations than allowed.
    #[error("a rule may have at most {max} destinations; this one has {count}")]
    TooManyDestinations {
        /// How many were given (after removing duplicates).
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// A destination equal to the rule's own address would loop forever.
    #[error("'{0}' cannot forward to itself")]
    ForwardsToItself(EmailAddress),
    /// With the rules already stored, mail for this rule would loop, pass through too
    /// many rules or reach too many destinations (see [`crate::expansion`]).
    #[error("{0}")]
    Expansion(crate::expansion::Cut),
}

/// A forwarding rule: mail for `pattern` goes to every one of `destinations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pattern: RecipientPattern,
    destinations: Vec<EmailAddress>,
}

impl Rule {
    /// Builds a rule. Duplicate destinations (by match key) are merged, keeping the first.
    ///
    /// # Errors
    /// [`InvalidRule`] when there is no destination, more than `max_destinations`, or
    /// the pattern forwards an address to itself.
    pub fn new(
        pattern: RecipientPattern,
        destinations: Vec<EmailAddress>,
        max_destinations: usize,
    ) -> Result<Self, InvalidRule> {
        let mut seen = HashSet::with_capacity(destinations.len());
        let unique: Vec<EmailAddress> = destinations
            .into_iter()
            .filter(|d| seen.insert(d.match_key()))
            .collect();
        if unique.is_empty() {
            return Err(InvalidRule::NoDestination);
        }
        if unique.len() > max_destinations {
            return Err(InvalidRule::TooManyDestinations {
                count: unique.len(),
                max: max_destinations,
            });
        }
        if let RecipientPattern::Exact(address) = &pattern
            && let Some(same) = unique.iter().find(|d| d.match_key() == address.match_key())
        {
            return Err(InvalidRule::ForwardsToItself(same.clone()));
        }
        Ok(Rule {
            pattern,
            destinations: unique,
        })
    }

    /// Which recipients this rule applies to.
    #[must_use]
    pub fn pattern(&self) -> &RecipientPattern {
        &self.pattern
    }

    /// Where matching mail goes, without duplicates, in the order given.
    #[must_use]
    pub fn destinations(&self) -> &[EmailAddress] {
        &self.destinations
    }

    /// Splits the rule into its parts.
    #[must_use]
    pub fn into_parts(self) -> (RecipientPattern, Vec<EmailAddress>) {
        (self.pattern, self.destinations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("valid test address")
    }

    #[test]
    fn catch_all_and_exact_patterns() {
        assert_eq!(
            RecipientPattern::parse("*@Acme.Test").map(|p| p.to_string()),
            Ok("*@acme.test".to_owned())
        );
        assert!(matches!(
            RecipientPattern::parse("Sales@acme.test"),
            Ok(RecipientPattern::Exact(_))
        ));
        assert_eq!(
            RecipientPattern::parse("Sales@acme.test").map(|p| p.key()),
            Ok("sales@acme.test".to_owned())
        );
        assert!(RecipientPattern::parse("*@bad..domain").is_err());
    }

    #[test]
    fn candidates_are_in_precedence_order() {
        assert_eq!(
            RecipientPattern::candidate_keys(&addr("User+Tag@x.test")),
            vec!["user+tag@x.test", "user@x.test", "*@x.test"]
        );
        assert_eq!(
            RecipientPattern::candidate_keys(&addr("user@x.test")),
            vec!["user@x.test", "*@x.test"]
        );
    }

    #[test]
    fn rule_validation() {
        let pattern = RecipientPattern::parse("a@x.test").expect("valid");
        assert_eq!(
            Rule::new(pattern.clone(), vec![], 10),
            Err(InvalidRule::NoDestination)
        );
        assert_eq!(
            Rule::new(pattern.clone(), vec![addr("A@X.test")], 10),
            Err(InvalidRule::ForwardsToItself(addr("A@x.test")))
        );
        let many: Vec<_> = (0..3).map(|i| addr(&format!("d{i}@y.test"))).collect();
        assert_eq!(
            Rule::new(pattern.clone(), many, 2),
            Err(InvalidRule::TooManyDestinations { count: 3, max: 2 })
        );
        let rule = Rule::new(
            pattern,
            vec![addr("b@y.test"), addr("B@y.test"), addr("c@y.test")],
            2,
        )
        .expect("duplicates merge before the limit is checked");
        assert_eq!(rule.destinations(), &[addr("b@y.test"), addr("c@y.test")]);
    }

    #[test]
    fn a_catch_all_may_forward_to_its_own_domain() {
        let pattern = RecipientPattern::parse("*@x.test").expect("valid");
        assert!(Rule::new(pattern, vec![addr("inbox@x.test")], 10).is_ok());
    }

    #[test]
    fn a_rule_cannot_be_for_an_address_literal() {
        for input in [
            "user@[192.0.2.1]",
            "*@[192.0.2.1]",
            "user@[IPv6:2001:db8::1]",
        ] {
            let error = RecipientPattern::parse(input).expect_err(input);
            assert!(
                matches!(error, AddressError::LiteralInRule(_)),
                "{input}: {error}"
            );
            assert!(error.to_string().contains("address literal"), "{error}");
        }
        assert!(RecipientPattern::parse("user@acme.test").is_ok());
    }
}
