//! The `RuleStore` contract suite on a fresh PostgreSQL database per test.

mod common;

use mailfwd_domain::rule_store_contract_tests;
use mailfwd_postgres::PgRuleStore;

async fn fresh_store() -> PgRuleStore {
    common::fresh_database().await.rules()
}

rule_store_contract_tests!(fresh_store());
