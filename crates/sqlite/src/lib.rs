//! mailfwd's embedded default storage: the ports on one SQLite database file.

mod emails;
mod pool;
mod queue;
mod rules;
mod writer;

pub use emails::SqliteEmailLog;
pub use pool::{ConnectError, connect};
pub use queue::SqliteDeliveryQueue;
pub use rules::SqliteRuleStore;
pub use writer::{WriteError, Writer};
