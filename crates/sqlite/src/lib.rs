//! mailfwd's embedded default storage: the ports on one SQLite database file.

mod pool;
mod rules;

pub use pool::{ConnectError, connect};
pub use rules::SqliteRuleStore;
