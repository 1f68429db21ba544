//! mailfwd's layers: decorators that wrap a port and implement the same port, so the
//! app can stack them around any adapter without the adapter or the services knowing.

mod body_move;
mod migrating;
mod rule_cache;
mod throttle;

pub use body_move::{BodyMover, MoveError, Moved};
pub use migrating::MigratingBodyStore;
pub use rule_cache::{CachedRuleStore, RuleCacheConfig};
pub use throttle::{
    DEFAULT_CHECK_INTERVAL, DiskFreeSpace, FreeSpace, ThrottleConfig, ThrottledEmailStore,
};
