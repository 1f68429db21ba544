//! A read-through cache in front of a [`RuleStore`].
//!
//! `resolve` is the hot path: it runs for every recipient at RCPT time and again for
//! every email forwarded, mostly for the same few addresses, and for many addresses
//! that are nobody's (spam). So its answers are cached, "no rule" included.
//!
//! # Staying correct under writes
//!
//! Every write through the layer goes to the wrapped store and then invalidates the
//! whole cache. One rule decides the answer for many recipient keys (a catch-all for
//! every address at its domain, `user@d` for every `user+tag@d`), so finding the keys
//! one change affects would mean re-implementing resolution here; dropping everything
//! is simple, obviously right, and rules change rarely next to how often mail arrives.
//!
//! Dropping entries is not enough on its own: a lookup that read the store before a
//! write and is stored in the cache after the invalidation would bring the old answer
//! back for a whole TTL. So every write also bumps a generation counter, *after* the
//! store has the change, and each cache entry carries the generation read *before* its
//! lookup began. An entry whose generation is older than the current one was possibly
//! read before some completed write: `resolve` treats it as a miss, evicts it, and
//! looks again.

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::rule_store::{RuleError, RulePage, RuleQuery, RuleStore};
use mailfwd_domain::{EmailAddress, RecipientPattern, Rule};
use moka::future::Cache;

/// How big the rule cache may grow and how stale it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCacheConfig {
    /// At most this many recipients are cached (one entry per recipient asked about,
    /// found or not). `0` turns the cache off: every call goes to the wrapped store.
    pub capacity: u64,
    /// How long an answer stays cached. Writes through this layer take effect at once
    /// anyway; the TTL bounds how long a change made by *another instance* goes unseen
    /// (until cross-instance invalidation calls [`CachedRuleStore::invalidate_all`]).
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

/// How often `resolve` retries when its answer was overtaken by a write before it
/// gives up on the cache for this call and asks the wrapped store directly. Only a
/// stream of back-to-back writes (a large import) gets there.
const FRESH_ATTEMPTS: usize = 3;

/// One cached answer and the generation it was read at (see the module docs).
#[derive(Debug, Clone)]
struct Cached {
    generation: u64,
    rule: Option<Rule>,
}

/// A [`RuleStore`] that caches [`RuleStore::resolve`] in front of another one.
///
/// `resolve` answers, found or not, are cached per recipient match key; concurrent
/// misses for one key share a single lookup; failed lookups are not cached. Every write
/// goes to the wrapped store and then invalidates the cache. `get` and `list` pass
/// through uncached: they serve the admin API, not the mail path.
pub struct CachedRuleStore {
    inner: Arc<dyn RuleStore>,
    /// `None` when the configuration turns caching off.
    cache: Option<Cache<String, Cached>>,
    /// Bumped after every write; see the module docs.
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
            config,
        }
    }

    /// Forgets every cached answer, including those of lookups still in flight. Writes
    /// through this layer call it themselves; call it when rules changed elsewhere
    /// (another instance, as reported by cross-instance invalidation).
    pub fn invalidate_all(&self) {
        // The bump makes answers read before now unusable, even those a lookup still in
        // flight is about to store; `invalidate_all` only frees what is already stored.
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    /// Asks the wrapped store, remembering the generation the answer is as fresh as.
    async fn lookup(&self, recipient: &EmailAddress) -> Result<Cached, RuleError> {
        // Read before the lookup starts: a write completed after this point bumps the
        // counter past it, whether or not the lookup saw that write.
        let generation = self.generation.load(Ordering::SeqCst);
        let rule = self.inner.resolve(recipient).await?;
        Ok(Cached { generation, rule })
    }
}

/// Invalidates the cache when a write finishes, fails, or is cancelled mid-way: a write
/// whose future is dropped (a client hung up) or that failed with a storage error may
/// still have reached the store, and guessing wrong would serve a stale rule for a TTL.
struct InvalidateWhenDone<'a>(&'a CachedRuleStore);

impl Drop for InvalidateWhenDone<'_> {
    fn drop(&mut self) {
        self.0.invalidate_all();
    }
}

#[async_trait]
impl RuleStore for CachedRuleStore {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        let _invalidate = InvalidateWhenDone(self);
        self.inner.create(rule).await
    }

    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        self.inner.get(pattern).await
    }

    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        let _invalidate = InvalidateWhenDone(self);
        self.inner.delete(pattern).await
    }

    async fn list(&self, query: &RuleQuery) -> Result<RulePage, RuleError> {
        self.inner.list(query).await
    }

    async fn upsert_many(&self, rules: Vec<Rule>) -> Result<u64, RuleError> {
        let _invalidate = InvalidateWhenDone(self);
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
            let cached = cache
                .try_get_with_by_ref(key.as_str(), self.lookup(recipient))
                .await
                .map_err(unshare)?;
            if cached.generation == self.generation.load(Ordering::SeqCst) {
                return Ok(cached.rule);
            }
            // Read before a write that has since completed. Evicting it may also evict
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
            .field("generation", &self.generation.load(Ordering::Relaxed))
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
