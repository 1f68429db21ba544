use super::*;
use crate::memory::MemoryRuleStore;

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("valid test address")
}

fn rule(pattern: &str, destinations: &[&str]) -> Rule {
    Rule::new(
        RecipientPattern::parse(pattern).expect("valid pattern"),
        destinations.iter().map(|d| addr(d)).collect(),
        100,
    )
    .expect("valid rule")
}

async fn store(rules: &[(&str, &[&str])]) -> MemoryRuleStore {
    let store = MemoryRuleStore::new();
    store
        .upsert_many(rules.iter().map(|(p, d)| rule(p, d)).collect())
        .await
        .expect("seeded");
    store
}

fn names(addresses: &[EmailAddress]) -> Vec<String> {
    addresses.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn destinations_with_rules_of_their_own_are_expanded_here() {
    let rules = store(&[
        ("a@loop.test", &["b@loop.test", "x@out.test"]),
        ("b@loop.test", &["y@out.test", "x@out.test"]),
    ])
    .await;
    let result = expand(&rules, &[addr("a@loop.test")], ExpansionLimits::default())
        .await
        .expect("expanded");
    assert_eq!(names(&result.destinations), ["y@out.test", "x@out.test"]);
    assert!(result.cuts.is_empty() && result.unmatched.is_empty());
}

#[tokio::test]
async fn the_issue_loop_expands_to_nothing_and_names_each_loop() {
    // a → [b, c], b → a, c → a: what once became 2^25 copies.
    let rules = store(&[
        ("a@loop.test", &["b@loop.test", "c@loop.test"]),
        ("b@loop.test", &["a@loop.test"]),
        ("c@loop.test", &["a@loop.test"]),
    ])
    .await;
    let result = expand(&rules, &[addr("a@loop.test")], ExpansionLimits::default())
        .await
        .expect("expanded");
    assert!(result.destinations.is_empty());
    let cuts: Vec<String> = result.cuts.iter().map(ToString::to_string).collect();
    assert_eq!(
        cuts,
        [
            "forwarding loop: a@loop.test → b@loop.test → a@loop.test",
            "forwarding loop: a@loop.test → c@loop.test → a@loop.test",
        ]
    );
}

#[tokio::test]
async fn a_catch_all_that_matches_its_own_destination_is_a_loop() {
    let rules = store(&[("*@x.test", &["inbox@x.test"])]).await;
    let result = expand(&rules, &[addr("bob@x.test")], ExpansionLimits::default())
        .await
        .expect("expanded");
    assert!(result.destinations.is_empty());
    assert_eq!(result.cuts[0].reason, CutReason::Loop);
    // With an exact rule for the inbox, the catch-all is fine.
    let rules = store(&[
        ("*@x.test", &["inbox@x.test"]),
        ("inbox@x.test", &["owner@out.test"]),
    ])
    .await;
    let result = expand(&rules, &[addr("bob@x.test")], ExpansionLimits::default())
        .await
        .expect("expanded");
    assert_eq!(names(&result.destinations), ["owner@out.test"]);
}

#[tokio::test]
async fn depth_and_fan_out_are_bounded() {
    let chain: Vec<(String, Vec<String>)> = (0..5)
        .map(|i| {
            (
                format!("r{i}@chain.test"),
                vec![format!("r{}@chain.test", i + 1)],
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<&str>)> = chain
        .iter()
        .map(|(p, d)| (p.as_str(), d.iter().map(String::as_str).collect()))
        .collect();
    let refs: Vec<(&str, &[&str])> = refs.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    let rules = store(&refs).await;
    let shallow = ExpansionLimits {
        max_depth: 3,
        max_destinations: 1000,
    };
    let result = expand(&rules, &[addr("r0@chain.test")], shallow)
        .await
        .expect("expanded");
    assert!(result.destinations.is_empty());
    assert_eq!(result.cuts[0].reason, CutReason::TooDeep);
    assert_eq!(
        result.cuts[0].path.last().map(String::as_str),
        Some("r3@chain.test")
    );
    let deep_enough = ExpansionLimits {
        max_depth: 5,
        max_destinations: 1000,
    };
    let result = expand(&rules, &[addr("r0@chain.test")], deep_enough)
        .await
        .expect("expanded");
    assert_eq!(names(&result.destinations), ["r5@chain.test"]);

    let rules = store(&[("a@fan.test", &["1@out.test", "2@out.test", "3@out.test"])]).await;
    let two = ExpansionLimits {
        max_depth: 10,
        max_destinations: 2,
    };
    let result = expand(&rules, &[addr("a@fan.test"), addr("z@none.test")], two)
        .await
        .expect("expanded");
    assert_eq!(names(&result.destinations), ["1@out.test", "2@out.test"]);
    assert_eq!(result.cuts.len(), 1);
    assert_eq!(result.cuts[0].reason, CutReason::TooMany);
    assert_eq!(names(&result.unmatched), ["z@none.test"]);
}

#[tokio::test]
async fn a_rule_reached_twice_is_expanded_once() {
    let rules = store(&[
        ("a@d.test", &["b@d.test", "c@d.test"]),
        ("b@d.test", &["shared@d.test"]),
        ("c@d.test", &["shared@d.test"]),
        ("shared@d.test", &["out@out.test"]),
    ])
    .await;
    let result = expand(
        &rules,
        &[addr("a@d.test"), addr("B@d.test")],
        ExpansionLimits::default(),
    )
    .await
    .expect("expanded");
    assert_eq!(names(&result.destinations), ["out@out.test"]);
    assert!(result.cuts.is_empty());
}

#[tokio::test]
async fn a_new_rule_that_closes_a_cycle_is_named() {
    let rules = store(&[("a@loop.test", &["b@loop.test", "c@loop.test"])]).await;
    let faults = check_rules(
        &rules,
        &[rule("b@loop.test", &["a@loop.test"])],
        ExpansionLimits::default(),
    )
    .await
    .expect("checked");
    assert_eq!(faults.len(), 1);
    assert_eq!(
        faults[0].1.to_string(),
        "forwarding loop: b@loop.test → a@loop.test → b@loop.test"
    );
    // A subaddress reaches its base address's rule.
    let faults = check_rules(
        &rules,
        &[rule("c@loop.test", &["a+tag@loop.test"])],
        ExpansionLimits::default(),
    )
    .await
    .expect("checked");
    assert_eq!(faults.len(), 1);
    // A catch-all that would catch its own destination.
    let faults = check_rules(
        &rules,
        &[rule("*@self.test", &["inbox@self.test"])],
        ExpansionLimits::default(),
    )
    .await
    .expect("checked");
    assert_eq!(
        faults[0].1.to_string(),
        "forwarding loop: *@self.test → inbox@self.test"
    );
    // A rule that leads out is fine.
    let faults = check_rules(
        &rules,
        &[rule("b@loop.test", &["c@loop.test", "out@out.test"])],
        ExpansionLimits::default(),
    )
    .await
    .expect("checked");
    assert!(faults.is_empty(), "{faults:?}");
}

#[tokio::test]
async fn a_cycle_within_one_batch_is_found_for_each_of_its_rules() {
    let rules = store(&[]).await;
    let faults = check_rules(
        &rules,
        &[
            rule("a@batch.test", &["b@batch.test"]),
            rule("b@batch.test", &["a@batch.test"]),
            rule("c@batch.test", &["out@out.test"]),
        ],
        ExpansionLimits::default(),
    )
    .await
    .expect("checked");
    let patterns: Vec<String> = faults.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(patterns, ["a@batch.test", "b@batch.test"]);
}

#[tokio::test]
async fn a_pending_rule_replaces_the_stored_one_of_its_pattern() {
    // Stored: b → a would loop with the new a → b; replacing b in the same batch ends it.
    let rules = store(&[("b@r.test", &["a@r.test"])]).await;
    let faults = check_rules(
        &rules,
        &[
            rule("a@r.test", &["b@r.test"]),
            rule("b@r.test", &["out@out.test"]),
        ],
        ExpansionLimits::default(),
    )
    .await
    .expect("checked");
    assert!(faults.is_empty(), "{faults:?}");
    // A pending exact rule takes precedence over a stored catch-all.
    let rules = store(&[("*@c.test", &["inbox@c.test"])]).await;
    let faults = check_rules(
        &rules,
        &[rule("inbox@c.test", &["out@out.test"])],
        ExpansionLimits::default(),
    )
    .await
    .expect("checked");
    assert!(faults.is_empty(), "{faults:?}");
}

#[tokio::test]
async fn a_rule_set_built_to_make_the_walk_long_is_cut_after_a_bounded_number_of_lookups() {
    // A chain of 40 rules that never reaches a final destination: within the depth
    // allowed, but past the lookups two destinations may cost (2 × 10).
    let chain: Vec<(String, Vec<String>)> = (0..40)
        .map(|i| {
            (
                format!("r{i}@long.test"),
                vec![format!("r{}@long.test", i + 1)],
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<&str>)> = chain
        .iter()
        .map(|(p, d)| (p.as_str(), d.iter().map(String::as_str).collect()))
        .collect();
    let refs: Vec<(&str, &[&str])> = refs.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    let rules = store(&refs).await;
    let limits = ExpansionLimits {
        max_depth: 100,
        max_destinations: 2,
    };
    let result = expand(&rules, &[addr("r0@long.test")], limits)
        .await
        .expect("expanded");
    assert!(result.destinations.is_empty());
    assert_eq!(result.cuts.len(), 1);
    assert_eq!(result.cuts[0].reason, CutReason::TooMany);
    assert_eq!(
        result.cuts[0].path.last().map(String::as_str),
        Some("r21@long.test"),
        "the 21st lookup is one too many"
    );
}
