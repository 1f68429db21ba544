//! The `RuleStore` contract suite on a fresh SQLite file per test.

mod common;

use mailfwd_domain::rule_store_contract_tests;
use mailfwd_sqlite::{Database, SqliteRuleStore};

async fn fresh_store() -> SqliteRuleStore {
    Database::open(&common::fresh_url("rules-contract"))
        .await
        .expect("open a fresh database")
        .rules()
}

rule_store_contract_tests!(fresh_store());
