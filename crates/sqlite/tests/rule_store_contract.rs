//! The `RuleStore` contract suite on a fresh SQLite file per test.

mod common;

use mailfwd_domain::rule_store_contract_tests;
use mailfwd_sqlite::SqliteRuleStore;

async fn fresh_store() -> SqliteRuleStore {
    SqliteRuleStore::connect(&common::fresh_url("rules-contract"))
        .await
        .expect("open a fresh database")
}

rule_store_contract_tests!(fresh_store());
