//! Expanding recipients through the rules, the way a forwarder that owns every address
//! it forwards must: a destination that has a rule of its own is expanded here, never
//! sent out to come back (ADR 0012).
//!
//! The walk runs over rules, not addresses: a rule's destinations are the same
//! whichever address matched it (a catch-all matches many). A destination whose rule is
//! already on the path is a loop and is cut; a rule expanded once is not expanded again
//! (duplicates are merged); the depth of the walk and the number of final destinations
//! are bounded. The same walk checks a rule before it is stored, so a rule set that
//! would loop is refused with the loop named.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::address::EmailAddress;
use crate::rule::{InvalidRule, RecipientPattern, Rule};
use crate::rule_store::{RuleError, RuleStore, has_rules_for};

/// How far one expansion may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpansionLimits {
    /// Rules one address may pass through: a recipient's own rule is depth 1.
    pub max_depth: usize,
    /// Final destinations one email may expand to, all recipients together.
    pub max_destinations: usize,
}

/// Postfix's `virtual_alias_expansion_limit` is 1000 too; ten rules deep is far more
/// than any forwarding chain a person sets up on purpose.
impl Default for ExpansionLimits {
    fn default() -> Self {
        ExpansionLimits {
            max_depth: 10,
            max_destinations: 1000,
        }
    }
}

/// Why the walk did not follow an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutReason {
    /// Its rule is already on the path: following it would go round forever.
    Loop,
    /// The path is already [`ExpansionLimits::max_depth`] rules long.
    TooDeep,
    /// [`ExpansionLimits::max_destinations`] final destinations were reached.
    TooMany,
}

/// An address the walk did not follow, and the path that led to it: the recipient (or
/// the pattern of the rule checked) first, the address not followed last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Why.
    pub reason: CutReason,
    /// The addresses from the start to the one cut.
    pub path: Vec<String>,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.join(" → ");
        match self.reason {
            CutReason::Loop => write!(f, "forwarding loop: {path}"),
            CutReason::TooDeep => write!(f, "forwarding chain too long: {path}"),
            CutReason::TooMany => write!(f, "too many destinations, from {path} on"),
        }
    }
}

/// What the recipients of one email expand to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Addresses no rule of ours matches, where the email goes, without duplicates.
    pub destinations: Vec<EmailAddress>,
    /// Recipients no rule matches (any more).
    pub unmatched: Vec<EmailAddress>,
    /// Addresses not followed.
    pub cuts: Vec<Cut>,
}

/// Expands `recipients` through `rules`.
///
/// # Errors
/// [`RuleError::Storage`] if the rules cannot be read.
pub async fn expand(
    rules: &dyn RuleStore,
    recipients: &[EmailAddress],
    limits: ExpansionLimits,
) -> Result<Expansion, RuleError> {
    let starts: Vec<Start> = recipients.iter().cloned().map(Start::Rule).collect();
    expand_starts(rules, &starts, limits).await
}

/// Where the expansion of one recipient starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At the recipient's own rule; with none, the recipient is unmatched.
    Rule(EmailAddress),
    /// At an address mailfwd sends the recipient's mail to itself (a bounce's original
    /// sender, the postmaster's mailbox): a destination like any other, expanded if it
    /// has a rule of its own.
    Routed {
        /// The recipient as received.
        recipient: EmailAddress,
        /// Where its mail goes.
        to: EmailAddress,
    },
}

/// [`expand`] for recipients some of which mailfwd routes itself.
///
/// # Errors
/// [`RuleError::Storage`] if the rules cannot be read.
pub async fn expand_starts(
    rules: &dyn RuleStore,
    starts: &[Start],
    limits: ExpansionLimits,
) -> Result<Expansion, RuleError> {
    let mut walk = Walk::new(Resolver::new(rules, Vec::new()), limits);
    for start in starts {
        match start {
            Start::Rule(recipient) => match walk.resolver.resolve(recipient).await? {
                Some(rule) => walk.expand(&rule, vec![recipient.to_string()]).await?,
                None => walk.result.unmatched.push(recipient.clone()),
            },
            Start::Routed { recipient, to } => {
                let path = vec![recipient.to_string(), to.to_string()];
                match walk.resolver.resolve(to).await? {
                    Some(rule) => walk.expand(&rule, path).await?,
                    None => walk.add_destination(to, path),
                }
            }
        }
    }
    Ok(walk.result)
}

/// Checks that storing `changed` (new or replacing rules, over what `rules` holds)
/// leaves no rule that loops, goes too deep or fans out too far; returns, for each
/// changed rule that would, the first such cut. Mail is still checked as it is
/// expanded; this refuses the rule set an operator could not have meant.
///
/// # Errors
/// [`RuleError::Storage`] if the rules cannot be read.
pub async fn check_rules(
    rules: &dyn RuleStore,
    changed: &[Rule],
    limits: ExpansionLimits,
) -> Result<Vec<(RecipientPattern, Cut)>, RuleError> {
    let mut resolver = Resolver::new(rules, changed.to_vec());
    let mut faults = Vec::new();
    for rule in changed {
        // Every rule is walked on its own: a rule merged away in another's walk still
        // needs its own verdict.
        let mut walk = Walk::new(resolver, limits);
        walk.expand(rule, vec![rule.pattern().to_string()]).await?;
        if let Some(cut) = walk.result.cuts.into_iter().next() {
            faults.push((rule.pattern().clone(), cut));
        }
        resolver = walk.resolver;
    }
    Ok(faults)
}

/// [`check_rules`] for one rule about to be created: an error naming the first cut.
///
/// # Errors
/// [`RuleError::Invalid`] with [`InvalidRule::Expansion`] when the rule would loop or
/// run away; [`RuleError::Storage`] if the rules cannot be read.
pub async fn check_new_rule(
    rules: &dyn RuleStore,
    rule: &Rule,
    limits: ExpansionLimits,
) -> Result<(), RuleError> {
    match check_rules(rules, std::slice::from_ref(rule), limits)
        .await?
        .into_iter()
        .next()
    {
        Some((_, cut)) => Err(RuleError::Invalid(InvalidRule::Expansion(cut))),
        None => Ok(()),
    }
}

/// Resolves addresses through the store, with rules about to be written taking
/// precedence over the store's, and remembers its answers for the walk.
struct Resolver<'a> {
    store: &'a dyn RuleStore,
    pending: HashMap<String, Rule>,
    answers: HashMap<String, Option<Rule>>,
    /// Whether the store holds any rule of a domain, asked once per domain when
    /// checking rules: an import of 100,000 rules to addresses elsewhere then costs a
    /// lookup per destination domain, not one per destination.
    stored_domains: HashMap<String, bool>,
}

impl<'a> Resolver<'a> {
    fn new(store: &'a dyn RuleStore, pending: Vec<Rule>) -> Self {
        Resolver {
            store,
            pending: pending
                .into_iter()
                .map(|rule| (rule.pattern().key(), rule))
                .collect(),
            answers: HashMap::new(),
            stored_domains: HashMap::new(),
        }
    }

    async fn resolve(&mut self, address: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        let key = address.match_key();
        if let Some(answer) = self.answers.get(&key) {
            return Ok(answer.clone());
        }
        let answer = if self.pending.is_empty() {
            self.store.resolve(address).await?
        } else {
            let stored = if self.store_has_domain(address).await? {
                self.store.resolve(address).await?
            } else {
                None
            };
            self.with_pending(address, stored)
        };
        self.answers.insert(key, answer.clone());
        Ok(answer)
    }

    async fn store_has_domain(&mut self, address: &EmailAddress) -> Result<bool, RuleError> {
        let domain = address.domain();
        if let Some(&known) = self.stored_domains.get(domain.as_str()) {
            return Ok(known);
        }
        let known = has_rules_for(self.store, domain).await?;
        self.stored_domains
            .insert(domain.as_str().to_owned(), known);
        Ok(known)
    }

    /// Whichever of the stored rule and the pending ones comes first in precedence; a
    /// pending rule replaces a stored one of the same pattern.
    fn with_pending(&self, address: &EmailAddress, stored: Option<Rule>) -> Option<Rule> {
        let stored_key = stored.as_ref().map(|rule| rule.pattern().key());
        for key in RecipientPattern::candidate_keys(address) {
            if let Some(rule) = self.pending.get(&key) {
                return Some(rule.clone());
            }
            if stored_key.as_deref() == Some(key.as_str()) {
                return stored;
            }
        }
        stored
    }
}

struct Walk<'a> {
    resolver: Resolver<'a>,
    limits: ExpansionLimits,
    /// Rules expanded completely: their destinations are in the result already.
    done: HashSet<String>,
    seen_destinations: HashSet<String>,
    result: Expansion,
    /// Addresses looked up so far: a rule set built to fan out wide (many rules, each
    /// reached once) costs at most [`LOOKUPS_PER_DESTINATION`] lookups per allowed
    /// destination, whatever its shape.
    lookups: usize,
    /// The walk reached its limit of destinations or lookups: it goes no further.
    full: bool,
}

/// Lookups one walk may make per destination it may reach: a rule has at most
/// [`crate::rule::DEFAULT_MAX_DESTINATIONS`] destinations unless configured otherwise.
const LOOKUPS_PER_DESTINATION: usize = 10;

impl<'a> Walk<'a> {
    fn new(resolver: Resolver<'a>, limits: ExpansionLimits) -> Self {
        Walk {
            resolver,
            limits,
            done: HashSet::new(),
            seen_destinations: HashSet::new(),
            result: Expansion::default(),
            lookups: 0,
            full: false,
        }
    }

    /// Expands `rule`, reached by `path`.
    async fn expand(&mut self, rule: &Rule, path: Vec<String>) -> Result<(), RuleError> {
        let mut on_path = vec![rule.pattern().key()];
        self.expand_from(rule, &path, &mut on_path).await
    }

    /// Expands `rule`, reached by `path`; `on_path` holds the keys of the rules on the
    /// path, the rule's own last.
    async fn expand_from(
        &mut self,
        rule: &Rule,
        path: &[String],
        on_path: &mut Vec<String>,
    ) -> Result<(), RuleError> {
        if self.done.contains(&rule.pattern().key()) {
            return Ok(());
        }
        for destination in rule.destinations() {
            if self.full {
                return Ok(());
            }
            let mut next_path = path.to_vec();
            next_path.push(destination.to_string());
            self.lookups += 1;
            if self.lookups
                > self
                    .limits
                    .max_destinations
                    .saturating_mul(LOOKUPS_PER_DESTINATION)
            {
                self.full = true;
                self.cut(CutReason::TooMany, next_path);
                return Ok(());
            }
            match self.resolver.resolve(destination).await? {
                None => self.add_destination(destination, next_path),
                Some(next) if on_path.contains(&next.pattern().key()) => {
                    self.cut(CutReason::Loop, next_path);
                }
                Some(_) if on_path.len() >= self.limits.max_depth => {
                    self.cut(CutReason::TooDeep, next_path);
                }
                Some(next) => {
                    on_path.push(next.pattern().key());
                    Box::pin(self.expand_from(&next, &next_path, on_path)).await?;
                    on_path.pop();
                }
            }
        }
        self.done.insert(rule.pattern().key());
        Ok(())
    }

    fn add_destination(&mut self, destination: &EmailAddress, path: Vec<String>) {
        if self.seen_destinations.contains(&destination.match_key()) {
            return;
        }
        if self.result.destinations.len() >= self.limits.max_destinations {
            // Whatever follows could only be cut too.
            self.full = true;
            return self.cut(CutReason::TooMany, path);
        }
        self.seen_destinations.insert(destination.match_key());
        self.result.destinations.push(destination.clone());
    }

    fn cut(&mut self, reason: CutReason, path: Vec<String>) {
        self.result.cuts.push(Cut { reason, path });
    }
}

#[cfg(test)]
mod tests;
