//! mailfwd's embedded default storage: the ports on one SQLite database file.
//!
//! [`Database::open`] is the one way in: it opens the file, runs the migrations and
//! starts the group-commit writer, then hands out the ports ([`Database::rules`],
//! [`Database::email_log`], [`Database::queue`], [`Database::body_store`]) sharing them.

mod bodies;
mod coalesce;
mod database;
mod emails;
mod pool;
mod queue;
mod rules;
mod writer;

pub use bodies::{ABANDONED_AFTER, SqliteBodyStore};
pub use database::Database;
pub use emails::SqliteEmailLog;
pub use pool::OpenError;
pub use queue::SqliteDeliveryQueue;
pub use rules::SqliteRuleStore;
