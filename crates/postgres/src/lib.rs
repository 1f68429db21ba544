//! mailfwd's shared storage: the ports on one PostgreSQL database, so that several
//! instances can share rules, the received log, the delivery queue and, if wanted, the
//! email bodies.
//!
//! [`PgDatabase::open`] is the one way in: it connects, runs the migrations, then hands
//! out the ports sharing its pool ([`PgDatabase::rules`], [`PgDatabase::email_log`],
//! [`PgDatabase::queue`], [`PgDatabase::body_store`]). They pass the same contract
//! suites as the SQLite adapter.
//!
//! Every rule write notifies the other instances, and so does every queue write that
//! leaves jobs due for anyone; a [`ChangeListener`] hears about it and tells the rule
//! cache what to forget and the idle workers to look in the queue.

mod bodies;
mod changes;
mod database;
mod emails;
mod millis;
mod pool;
mod queue;
mod rules;

pub use bodies::{ABANDONED_AFTER, PgBodyStore};
pub use changes::{Change, ChangeListener, ListenerSettings};
pub use database::PgDatabase;
pub use emails::PgEmailLog;
pub use pool::{OpenError, PoolSettings};
pub use queue::PgDeliveryQueue;
pub use rules::PgRuleStore;
