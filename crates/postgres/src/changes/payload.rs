//! What a rule write tells the other instances: one `NOTIFY` on [`CHANNEL`] per write
//! call, committed with the write, whose payload names what changed.
//!
//! One per call, never per row: a `NOTIFY` takes a global lock at commit, so per-row
//! notifications would serialize every writer on the server behind an import.

use std::collections::HashSet;

use mailfwd_domain::{Invalidation, RecipientPattern, Rule};

/// The channel rule writes notify and the listener listens on.
pub(crate) const CHANNEL: &str = "mailfwd_rules";

/// The payload meaning "anything may have changed". Pattern keys always hold an '@',
/// so nothing else reads as it, and any payload without one is read as it too.
const ALL: &str = "all";

/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;

/// The payload for a write of the one rule with pattern key `key`.
pub(crate) fn for_key(key: String) -> String {
    if key.len() > MAX_PAYLOAD || !key.contains('@') {
        ALL.to_owned()
    } else {
        key
    }
}

/// The payload for an import of `rules`, `None` when it writes nothing: the one key
/// when it writes one; the domain's catch-all key when all its rules share a domain
/// (a catch-all change may change any address at the domain, so every listener
/// already drops the whole domain for it); otherwise "anything may have changed".
pub(crate) fn for_import(rules: &[&Rule]) -> Option<String> {
    let first = rules.first()?;
    if rules.len() == 1 {
        return Some(for_key(first.pattern().key()));
    }
    let domains: HashSet<&str> = rules
        .iter()
        .map(|rule| rule.pattern().domain().as_str())
        .collect();
    Some(if domains.len() == 1 {
        for_key(RecipientPattern::CatchAll(first.pattern().domain().clone()).key())
    } else {
        ALL.to_owned()
    })
}

/// What a received payload says changed.
pub(crate) fn parse(payload: &str) -> Invalidation {
    if payload.contains('@') {
        Invalidation::Key(payload.to_owned())
    } else {
        Invalidation::All
    }
}

#[cfg(test)]
mod tests {
    use mailfwd_domain::EmailAddress;

    use super::*;

    fn rule(pattern: &str) -> Rule {
        let pattern = RecipientPattern::parse(pattern).expect("a pattern");
        let destination = EmailAddress::parse("d@dest.test").expect("an address");
        Rule::new(pattern, vec![destination], 10).expect("a rule")
    }

    #[test]
    fn a_single_rule_names_its_key() {
        let payload = for_key(rule("Sales@Acme.test").pattern().key());
        assert_eq!(payload, "sales@acme.test");
        assert_eq!(parse(&payload), Invalidation::Key(payload.clone()));
        assert_eq!(
            for_import(&[&rule("*@acme.test")]).as_deref(),
            Some("*@acme.test")
        );
    }

    #[test]
    fn an_import_names_its_one_domain_or_everything() {
        let (a, b, c) = (rule("a@x.test"), rule("b@x.test"), rule("c@y.test"));
        assert_eq!(for_import(&[&a, &b]).as_deref(), Some("*@x.test"));
        let all = for_import(&[&a, &b, &c]).expect("a payload");
        assert_eq!(parse(&all), Invalidation::All);
        assert_eq!(for_import(&[]), None, "nothing written, nothing to tell");
    }

    #[test]
    fn payloads_stay_under_the_limit_and_unknown_ones_mean_everything() {
        assert_eq!(for_key("x".repeat(8000) + "@x.test"), ALL);
        assert_eq!(parse(""), Invalidation::All);
        assert_eq!(parse("something new"), Invalidation::All);
    }
}
