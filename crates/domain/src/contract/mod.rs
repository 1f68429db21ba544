//! Contract suites: the behaviour every implementation of a port must show.
//!
//! An adapter runs a suite with one macro call, giving an async expression that builds
//! a fresh, empty store. The in-memory store runs the same suite in this crate's tests.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_docs)]

pub mod body_store;
pub mod delivery_queue;
pub mod email_log;
pub mod rule_store;

/// Generates one `#[tokio::test]` per `RuleStore` contract case. `$make` is an async
/// expression that builds a fresh, empty store (anything implementing `RuleStore`).
#[macro_export]
macro_rules! rule_store_contract_tests {
    ($make:expr) => {
        $crate::rule_store_contract_tests!(@cases $make;
            create_get_delete,
            patterns_match_case_insensitively,
            addresses_round_trip_exactly,
            resolve_follows_precedence,
            list_pages_in_key_order_with_domain_filter,
            upsert_many_creates_and_replaces);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $crate::contract_cases!(rule_store, $make; $($case),*);
    };
}

/// Generates one `#[tokio::test]` per `BodyStore` contract case; `$make` builds a fresh store.
#[macro_export]
macro_rules! body_store_contract_tests {
    ($make:expr) => {
        $crate::contract_cases!(body_store, $make; bodies_round_trip_byte_for_byte,
            uncommitted_and_aborted_bodies_do_not_exist, interleaved_writers_keep_their_bodies_apart,
            deleted_bodies_are_gone_and_a_second_delete_is_fine);
    };
}

/// Generates one `#[tokio::test]` per `EmailLog` contract case; `$make` builds a fresh log.
#[macro_export]
macro_rules! email_log_contract_tests {
    ($make:expr) => {
        $crate::contract_cases!(email_log, $make; records_round_trip, list_by_time_window_in_pages,
            records_stay_unevaluated_until_marked,
            unevaluated_records_page_after_a_cursor, unevaluated_stats_count_and_date_the_backlog,
            only_evaluated_records_are_forgotten);
    };
}

/// Generates one `#[tokio::test]` per `DeliveryQueue` contract case; `$make` builds a fresh queue.
#[macro_export]
macro_rules! delivery_queue_contract_tests {
    ($make:expr) => {
        $crate::contract_cases!(delivery_queue, $make; enqueue_is_idempotent_unless_forced,
            enqueue_claimed_holds_new_jobs_for_the_caller,
            a_released_claim_is_due_at_once_and_uncounted,
            a_release_may_postpone_the_job,
            a_lost_lease_records_nothing_and_leaves_the_new_lease_alone,
            claims_are_exclusive_until_the_lease_expires,
            retries_come_back_when_due_and_failures_are_final,
            claim_respects_the_limit_and_hands_out_distinct_jobs,
            release_all_leases_makes_held_jobs_due_at_once_and_keeps_their_attempts,
            an_email_is_forgotten_only_once_every_job_is_final);
    };
}

/// One `#[tokio::test]` per case of a contract module.
#[doc(hidden)]
#[macro_export]
macro_rules! contract_cases {
    ($module:ident, $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::contract::$module::$case(&store).await;
            }
        )*
    };
}

#[cfg(test)]
mod memory_runs_the_contracts {
    mod rules {
        use crate::memory::MemoryRuleStore;
        rule_store_contract_tests!(async { MemoryRuleStore::new() });
    }
    mod bodies {
        use crate::memory::MemoryBodyStore;
        body_store_contract_tests!(async { MemoryBodyStore::new() });
    }
    mod log {
        use crate::memory::MemoryEmailLog;
        email_log_contract_tests!(async { MemoryEmailLog::new() });
    }
    mod queue {
        use crate::memory::MemoryDeliveryQueue;
        delivery_queue_contract_tests!(async { MemoryDeliveryQueue::new() });
    }
}
