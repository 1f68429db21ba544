//! mailfwd's email bodies on object storage, through `object_store`: an S3 bucket
//! (`s3://bucket/prefix`) or, by default, a local directory (`file://path`) with the
//! same code.
//!
//! [`ObjectBodyStore`] implements the domain's `BodyStore` port. Bodies are keyed
//! `<prefix>/YYYY/MM/DD/<id>.eml` by the date in their UUIDv7 id, streamed in and out
//! in chunks, and durable when `commit` returns. On S3, requests time out and are retried
//! as [`remote`] says, and bodies whose record is not yet durable are marked pending so
//! that orphans can be swept.

mod durable;
mod error;
mod key;
mod marker;
mod open;
pub mod remote;
mod store;
mod writer;

pub use open::{ENDPOINT_VARIABLE, OpenError};
pub use store::ObjectBodyStore;
