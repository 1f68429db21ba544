//! The `DeliveryQueue` contract suite on a fresh PostgreSQL database per test.

mod common;

use mailfwd_domain::delivery_queue_contract_tests;
use mailfwd_postgres::PgDeliveryQueue;

async fn fresh_queue() -> PgDeliveryQueue {
    common::fresh_database().await.queue()
}

delivery_queue_contract_tests!(fresh_queue());
