//! Invalidations reported from elsewhere: by pattern key (its whole domain) or all.

use super::*;

/// Caches the answers for `recipients` through `cached`, then checks they are cached.
async fn cache_all(probe: &ProbeStore, cached: &CachedRuleStore, recipients: &[&str]) {
    for recipient in recipients {
        forwards(cached, recipient).await;
    }
    let before = probe.resolves();
    for recipient in recipients {
        forwards(cached, recipient).await;
    }
    assert_eq!(probe.resolves(), before, "all cached");
}

#[tokio::test]
async fn a_catch_all_key_drops_every_answer_at_its_domain_and_no_other() {
    let (probe, cached) = cached_layer();
    let at_acme = ["sales@acme.test", "nobody@acme.test", "bob+tag@acme.test"];
    cache_all(&probe, &cached, &at_acme).await;
    cache_all(&probe, &cached, &["a@other.test"]).await;
    // Written behind the cache's back, as another instance would.
    probe
        .create(rule("*@acme.test", "all@dest.test"))
        .await
        .expect("created");

    cached.invalidate(&Invalidation::Key("*@acme.test".to_owned()));
    for recipient in at_acme {
        assert_eq!(forwards(&cached, recipient).await, "all@dest.test");
    }
    let before = probe.resolves();
    assert_eq!(forwards(&cached, "a@other.test").await, "nowhere");
    assert_eq!(probe.resolves(), before, "another domain stays cached");
}

#[tokio::test]
async fn an_exact_key_drops_the_answers_for_its_subaddresses_too() {
    let (probe, cached) = cached_layer();
    cache_all(&probe, &cached, &["bob@acme.test", "Bob+news@acme.test"]).await;
    probe
        .create(rule("bob@acme.test", "bob@dest.test"))
        .await
        .expect("created");

    cached.invalidate_pattern_key("bob@acme.test");
    assert_eq!(forwards(&cached, "bob@acme.test").await, "bob@dest.test");
    assert_eq!(
        forwards(&cached, "Bob+news@acme.test").await,
        "bob@dest.test"
    );
    let before = probe.resolves();
    assert_eq!(
        forwards(&cached, "bob+news@acme.test").await,
        "bob@dest.test"
    );
    assert_eq!(probe.resolves(), before, "the fresh answer is cached");
}

#[tokio::test]
async fn invalidation_all_or_an_unreadable_key_forgets_everything() {
    for change in [Invalidation::All, Invalidation::Key("garbage".to_owned())] {
        let (probe, cached) = cached_layer();
        cache_all(&probe, &cached, &["a@x.test", "b@y.test"]).await;
        probe
            .create(rule("*@x.test", "x@dest.test"))
            .await
            .expect("created");
        probe
            .create(rule("*@y.test", "y@dest.test"))
            .await
            .expect("created");

        cached.invalidate(&change);
        assert_eq!(
            forwards(&cached, "a@x.test").await,
            "x@dest.test",
            "{change:?}"
        );
        assert_eq!(
            forwards(&cached, "b@y.test").await,
            "y@dest.test",
            "{change:?}"
        );
    }
}

#[tokio::test]
async fn a_lookup_overtaken_by_a_reported_change_does_not_bring_the_old_answer_back() {
    let (probe, cached) = cached_layer();
    probe
        .create(rule("a@x.test", "old@dest.test"))
        .await
        .expect("created");

    overtake_a_lookup_with(&probe, &cached, async {
        probe.delete(&pattern("a@x.test")).await.expect("deleted");
        cached.invalidate(&Invalidation::Key("a@x.test".to_owned()));
    })
    .await;

    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
}

#[tokio::test]
async fn the_invalidator_callback_applies_changes_to_a_shared_cache() {
    let probe = Arc::new(ProbeStore::default());
    let cached = Arc::new(CachedRuleStore::new(
        probe.clone(),
        RuleCacheConfig::default(),
    ));
    let callback = cached.invalidator();
    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
    probe
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");

    std::thread::spawn(move || callback(Invalidation::Key("a@x.test".to_owned())))
        .join()
        .expect("the callback runs on another thread");
    assert_eq!(forwards(&cached, "a@x.test").await, "one@dest.test");
}

#[tokio::test]
async fn invalidating_a_disabled_cache_does_nothing() {
    let (probe, cached) = layer(RuleCacheConfig {
        capacity: 0,
        ..RuleCacheConfig::default()
    });
    cached.invalidate(&Invalidation::Key("*@x.test".to_owned()));
    cached.invalidate(&Invalidation::All);
    assert_eq!(forwards(&cached, "a@x.test").await, "nowhere");
    assert_eq!(probe.resolves(), 1);
}

#[tokio::test]
async fn a_write_through_the_layer_keeps_other_domains_cached() {
    let (probe, cached) = cached_layer();
    cache_all(&probe, &cached, &["a@other.test"]).await;
    cached
        .create(rule("a@x.test", "one@dest.test"))
        .await
        .expect("created");
    cached.delete(&pattern("a@x.test")).await.expect("deleted");
    let before = probe.resolves();
    assert_eq!(forwards(&cached, "a@other.test").await, "nowhere");
    assert_eq!(probe.resolves(), before);
}
