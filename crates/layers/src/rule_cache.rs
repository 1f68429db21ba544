//! A read-through cache in front of a [`RuleStore`].
//!
//! `resolve` is the hot path: it runs for every recipient at RCPT time and again for
//! every email forwarded, mostly for the same few addresses, and for many addresses
//! that are nobody's (spam). So its answers are cached, "no rule" included.
//!
//! # Staying correct under writes
//!
//! Every write through the layer goes to the wrapped store and then invalidates what
//! it may have changed; changes made by other instances arrive as [`Invalidation`]s
//! through [`CachedRuleStore::invalidate`]. One rule decides the answer for many
//! recipient keys (a catch-all for every address at its domain, `user@d` for every
//! `user+tag@d`), so finding the exact keys one change affects would mean
//! re-implementing resolution here. A rule's pattern only ever answers for addresses
//! at its own domain, though: a change to one pattern invalidates its whole domain,
//! simple and obviously right; an import invalidates everything.
//!
//! Dropping entries is not enough on its own: a lookup that read the store before a
//! write and is stored in the cache after the invalidation would bring the old answer
//! back for a whole TTL. So each entry carries the time (of a logical clock, see
//! `freshness`) read *before* its lookup began, and every invalidation records its own
//! time *after* the store has the change. An entry older than an invalidation covering
//! it was possibly read before that change: `resolve` treats it as a miss, evicts it,
//! and looks again.

mod freshness;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::rule_store::{Invalidation, RuleError, RulePage, RuleQuery, RuleStore};
use mailfwd_domain::{EmailAddress, RecipientPattern, Rule};
use moka::future::Cache;

use self::freshness::Freshness;

/// How big the rule cache may grow and how stale it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCacheConfig {
    /// At most this many recipients are cached (one entry per recipient asked about,
    /// found or not). `0` turns the cache off: every call goes to the wrapped store.
    pub capacity: u64,
    /// How long an answer stays cached. Writes through this layer take effect at once
    /// anyway; the TTL bounds how long a change made by *another instance* goes unseen
    /// (when cross-instance invalidation is not wired, or lost a notification unseen).
    /// `0` turns the cache off. Values above a year are treated as a year.
    pub ttl: Duration,
}

impl RuleCacheConfig {
    /// The default [`capacity`](Self::capacity): 100,000 recipients.
    pub const DEFAULT_CAPACITY: u64 = 100_000;
    /// The default [`ttl`](Self::ttl): 30 seconds.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

    /// Whether this configuration caches anything at all.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.capacity > 0 && !self.ttl.is_zero()
    }
}

impl Default for RuleCacheConfig {
    fn default() -> Self {
        RuleCacheConfig {
            capacity: Self::DEFAULT_CAPACITY,
            ttl: Self::DEFAULT_TTL,
        }
    }
}

/// moka panics on a TTL above 1000 years; nobody means more than this.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How often `resolve` retries when its answer was overtaken by a change before it
/// gives up on the cache for this call and asks the wrapped store directly. Only a
/// stream of back-to-back writes (a large import) gets there.
const FRESH_ATTEMPTS: usize = 3;

/// One cached answer and the clock it was read at (see the module docs).
#[derive(Debug, Clone)]
struct Cached {
    read_at: u64,
    rule: Option<Rule>,
}

/// A [`RuleStore`] that caches [`RuleStore::resolve`] in front of another one.
///
/// `resolve` answers, found or not, are cached per recipient match key; concurrent
/// misses for one key share a single lookup; failed lookups are not cached. Every write
/// goes to the wrapped store and then invalidates the cache. `get` and `list` pass
/// through uncached: they serve the admin API, not the mail path.
///
/// Changes made elsewhere are applied with [`invalidate`](Self::invalidate) (or
/// [`invalidator`](Self::invalidator), a callback for a change listener). All methods
/// take `&self`: share one instance behind an `Arc`.
pub struct CachedRuleStore {
    inner: Arc<dyn RuleStore>,
    /// `None` when the configuration turns caching off.
    cache: Option<Cache<String, Cached>>,
    /// Which cached answers are still good; see the module docs.
    freshness: Freshness,
    config: RuleCacheConfig,
}

impl CachedRuleStore {
    /// Wraps `inner` in a cache configured by `config`.
    #[must_use]
    pub fn new(inner: Arc<dyn RuleStore>, config: RuleCacheConfig) -> Self {
        let cache = config.is_enabled().then(|| {
            Cache::builder()
                .max_capacity(config.capacity)
                .time_to_live(config.ttl.min(MAX_TTL))
                .build()
        });
        CachedRuleStore {
            inner,
            cache,
            freshness: Freshness::default(),
            config,
        }
    }

    /// Forgets every cached answer, including those of lookups still in flight. Writes
    /// through this layer call it themselves; call it when rules may have changed
    /// elsewhere in ways nobody reported (a change listener that lost its connection).
    pub fn invalidate_all(&self) {
        // The tick makes answers read before now unusable, even those a lookup still in
        // flight is about to store; `invalidate_all` only frees what is already stored.
        self.freshness.flush();
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    /// Forgets every cached answer the rule for pattern key `key` (a
    /// [`RecipientPattern::key`], e.g. `*@acme.test` or `sales@acme.test`) could have
    /// decided, including those of lookups still in flight: every answer for an address
    /// at its domain. Something that is not a pattern key forgets everything.
    pub fn invalidate_pattern_key(&self, key: &str) {
        // A key is `local@domain` and a domain holds no '@' (a quoted local part may).
        match key.rsplit_once('@') {
            Some((_, domain)) if !domain.is_empty() => {
                // Stale entries stay stored until read (then evicted) or expired: finding
                // them all now would walk the whole cache.
                self.freshness.invalidate_domain(domain);
            }
            _ => self.invalidate_all(),
        }
    }

    /// Applies a change reported by another instance: see
    /// [`invalidate_pattern_key`](Self::invalidate_pattern_key) and
    /// [`invalidate_all`](Self::invalidate_all).
    pub fn invalidate(&self, change: &Invalidation) {
        match change {
            Invalidation::Key(key) => self.invalidate_pattern_key(key),
            Invalidation::All => self.invalidate_all(),
        }
    }

    /// A callback that applies each change it is given to this cache, for a change
    /// listener (e.g. the PostgreSQL adapter's rule-change listener).
    pub fn invalidator(self: &Arc<Self>) -> impl Fn(Invalidation) + Send + Sync + 'static {
        let cache = Arc::clone(self);
        move |change| cache.invalidate(&change)
    }

    /// Asks the wrapped store, remembering the clock the answer is as fresh as.
    async fn lookup(&self, recipient: &EmailAddress) -> Result<Cached, RuleError> {
        // Read before the lookup starts: an invalidation made after this point ticks the
        // clock past it, whether or not the lookup saw the change behind it.
        let read_at = self.freshness.now();
        let rule = self.inner.resolve(recipient).await?;
        Ok(Cached { read_at, rule })
    }
}

/// Invalidates what a write may have changed when it finishes, fails, or is cancelled
/// mid-way: a write whose future is dropped (a client hung up) or that failed with a
/// storage error may still have reached the store, and guessing wrong would serve a
/// stale rule for a TTL. `None` is a write of many rules: everything.
struct InvalidateWhenDone<'a>(&'a CachedRuleStore, Option<String>);

impl Drop for InvalidateWhenDone<'_> {
    fn drop(&mut self) {
        match &self.1 {
            Some(key) => self.0.invalidate_pattern_key(key),
            None => self.0.invalidate_all(),
        }
    }
}

#[async_trait]
impl RuleStore for CachedRuleStore {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        let _invalidate = InvalidateWhenDone(self, Some(rule.pattern().key()));
        self.inner.create(rule).await
    }

    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        self.inner.get(pattern).await
    }

    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        let _invalidate = InvalidateWhenDone(self, Some(pattern.key()));
        self.inner.delete(pattern).await
    }

    async fn list(&self, query: &RuleQuery) -> Result<RulePage, RuleError> {
        self.inner.list(query).await
    }

    async fn upsert_many(&self, rules: Vec<Rule>) -> Result<u64, RuleError> {
        let _invalidate = InvalidateWhenDone(self, None);
        self.inner.upsert_many(rules).await
    }

    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        let Some(cache) = &self.cache else {
            return self.inner.resolve(recipient).await;
        };
        // Stores resolve through `RecipientPattern::candidate_keys`, which depends on the
        // recipient only through its match key: every spelling of an address shares one
        // entry, and two addresses with one key always get the same answer.
        let key = recipient.match_key();
        for _ in 0..FRESH_ATTEMPTS {
            // Set only if this call ran the store lookup (a miss); waiting for another
            // caller's lookup of the same key counts as a hit, as no query was made.
            let missed = AtomicBool::new(false);
            let lookup = async {
                missed.store(true, Ordering::Relaxed);
                self.lookup(recipient).await
            };
            let cached = cache
                .try_get_with_by_ref(key.as_str(), lookup)
                .await
                .map_err(unshare)?;
            if missed.load(Ordering::Relaxed) {
                metrics::counter!("mailfwd_rule_cache_misses_total").increment(1);
            } else {
                metrics::counter!("mailfwd_rule_cache_hits_total").increment(1);
            }
            if self
                .freshness
                .is_fresh(cached.read_at, recipient.domain().as_str())
            {
                return Ok(cached.rule);
            }
            // Read before an invalidation that covers it. Evicting it may also evict
            // a fresh answer stored meanwhile, which only costs one more lookup.
            cache.invalidate(key.as_str()).await;
        }
        self.inner.resolve(recipient).await
    }
}

impl fmt::Debug for CachedRuleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedRuleStore")
            .field("config", &self.config)
            .field("clock", &self.freshness.now())
            .finish_non_exhaustive()
    }
}

/// `try_get_with` hands every caller that waited on one failed lookup the same `Arc`ed
/// error; each caller gets a `RuleError` of the same variant back.
fn unshare(error: Arc<RuleError>) -> RuleError {
    match Arc::try_unwrap(error) {
        Ok(error) => error,
        Err(shared) => match &*shared {
            RuleError::AlreadyExists(pattern) => RuleError::AlreadyExists(pattern.clone()),
            RuleError::NotFound(pattern) => RuleError::NotFound(pattern.clone()),
            RuleError::Invalid(invalid) => RuleError::Invalid(invalid.clone()),
            RuleError::InvalidCursor => RuleError::InvalidCursor,
            RuleError::Storage(_) => RuleError::Storage(Box::new(SharedStorageError(shared))),
        },
    }
}

/// The source of a [`RuleError::Storage`] shared by several callers, shown as itself.
#[derive(Debug)]
struct SharedStorageError(Arc<RuleError>);

impl SharedStorageError {
    fn source_error(&self) -> &(dyn std::error::Error + 'static) {
        match &*self.0 {
            RuleError::Storage(source) => source.as_ref(),
            other => other,
        }
    }
}

impl fmt::Display for SharedStorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.source_error(), f)
    }
}

impl std::error::Error for SharedStorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source_error().source()
    }
}
