//! mailfwd's embedded default storage: the ports on one SQLite database file.

mod emails;
mod pool;
mod queue;
mod rules;

pub use emails::SqliteEmailLog;
pub use pool::{ConnectError, connect, connect_relaxed};
pub use queue::SqliteDeliveryQueue;
pub use rules::SqliteRuleStore;
