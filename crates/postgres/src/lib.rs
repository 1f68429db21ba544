//! mailfwd's shared storage: the ports on one PostgreSQL database, so that several
//! instances can share rules, the received log and the delivery queue.
//!
//! [`PgDatabase::open`] is the one way in: it connects, runs the migrations, then hands
//! out the ports sharing its pool.

mod database;
mod emails;
mod millis;
mod pool;
mod rules;

pub use database::PgDatabase;
pub use emails::PgEmailLog;
pub use pool::{OpenError, PoolSettings};
pub use rules::PgRuleStore;
