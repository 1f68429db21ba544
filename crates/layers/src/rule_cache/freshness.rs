//! Which cached answers may still be served, after invalidations of everything or of
//! one domain, including answers whose lookup was in flight when the invalidation came.
//!
//! A logical clock ticks at every invalidation. Each answer remembers the clock as it
//! was *before* its lookup began; each invalidation remembers the tick it made, for
//! everything (`flushed_at`) or for one domain. An answer read before an invalidation
//! that covers it is stale: its lookup may have started before the change it reports.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// At most this many domains remember their own invalidation; one more turns into an
/// invalidation of everything, which forgets them all. Bounds memory whatever another
/// instance writes, and no real stream of changes gets near it between two imports.
const MAX_DOMAINS: usize = 10_000;

/// The clock and the invalidations; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Freshness {
    clock: AtomicU64,
    /// The ticks of invalidations; an entry per domain invalidated since the last flush.
    barriers: RwLock<Barriers>,
}

#[derive(Debug, Default)]
struct Barriers {
    flushed_at: u64,
    domains: HashMap<String, u64>,
}

impl Freshness {
    /// The clock, to be read before a lookup begins and stored with its answer.
    pub(super) fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Makes every answer read before now stale.
    pub(super) fn flush(&self) {
        let mut barriers = self.barriers.write().unwrap_or_else(|e| e.into_inner());
        // Ticked under the lock, so ticks and barriers change in the same order.
        barriers.flushed_at = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        // Every domain barrier is older than the flush, so none of them matters now.
        barriers.domains.clear();
    }

    /// Makes every answer read before now for an address at `domain` stale.
    pub(super) fn invalidate_domain(&self, domain: &str) {
        let mut barriers = self.barriers.write().unwrap_or_else(|e| e.into_inner());
        let tick = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        if barriers.domains.len() >= MAX_DOMAINS && !barriers.domains.contains_key(domain) {
            barriers.flushed_at = tick;
            barriers.domains.clear();
        } else {
            barriers.domains.insert(domain.to_owned(), tick);
        }
    }

    /// Whether an answer for an address at `domain`, read at `read_at`, may be served.
    pub(super) fn is_fresh(&self, read_at: u64, domain: &str) -> bool {
        // Nothing was invalidated since the read: the common case, without a lock.
        if read_at >= self.now() {
            return true;
        }
        let barriers = self.barriers.read().unwrap_or_else(|e| e.into_inner());
        read_at >= barriers.flushed_at
            && barriers
                .domains
                .get(domain)
                .is_none_or(|&tick| read_at >= tick)
    }

    /// How many domains remember their own invalidation (for tests).
    #[cfg(test)]
    pub(super) fn domains(&self) -> usize {
        self.barriers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .domains
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_stale_after_an_invalidation_that_covers_it() {
        let freshness = Freshness::default();
        let before = freshness.now();
        freshness.invalidate_domain("a.test");
        assert!(!freshness.is_fresh(before, "a.test"));
        assert!(freshness.is_fresh(before, "b.test"), "another domain");
        assert!(freshness.is_fresh(freshness.now(), "a.test"), "read after");

        let before_flush = freshness.now();
        freshness.flush();
        assert!(!freshness.is_fresh(before_flush, "b.test"));
        assert!(freshness.is_fresh(freshness.now(), "b.test"));
        assert_eq!(freshness.domains(), 0, "a flush forgets the domains");
    }

    #[test]
    fn too_many_domains_turn_into_a_flush() {
        let freshness = Freshness::default();
        for i in 0..MAX_DOMAINS {
            freshness.invalidate_domain(&format!("d{i}.test"));
        }
        let before = freshness.now();
        freshness.invalidate_domain("d0.test");
        assert_eq!(
            freshness.domains(),
            MAX_DOMAINS,
            "a known domain is updated"
        );
        freshness.invalidate_domain("one-more.test");
        assert_eq!(freshness.domains(), 0);
        assert!(!freshness.is_fresh(before, "unrelated.test"), "flushed");
    }
}
