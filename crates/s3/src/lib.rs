//! mailfwd's email bodies on object storage, through `object_store`: an S3 bucket
//! (`s3://bucket/prefix`) or, by default, a local directory (`file://path`) with the
//! same code.
//!
//! [`ObjectBodyStore`] implements the domain's `BodyStore` port. Bodies are keyed
//! `<prefix>/YYYY/MM/DD/<id>.eml` by the date in their UUIDv7 id, streamed in and out
//! in chunks, and durable when `commit` returns.

mod durable;
mod error;
mod key;
mod open;
mod store;
mod writer;

pub use open::{ENDPOINT_VARIABLE, OpenError};
pub use store::ObjectBodyStore;
