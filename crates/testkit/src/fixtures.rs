//! Small values the tests build again and again.

use mailfwd_domain::{EmailAddress, RecipientPattern, Rule};

/// Destinations a fixture rule may have at most.
pub const MAX_DESTINATIONS: usize = 10;

/// The address `s`, which must be valid.
#[must_use]
pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap_or_else(|e| panic!("'{s}' is not a valid address: {e}"))
}

/// The rule `pattern` → `destinations`, which must be valid.
#[must_use]
pub fn rule(pattern: &str, destinations: &[&str]) -> Rule {
    let parsed = RecipientPattern::parse(pattern)
        .unwrap_or_else(|e| panic!("'{pattern}' is not a valid pattern: {e}"));
    let destinations = destinations.iter().map(|d| addr(d)).collect();
    Rule::new(parsed, destinations, MAX_DESTINATIONS)
        .unwrap_or_else(|e| panic!("the rule for '{pattern}' is not valid: {e}"))
}
