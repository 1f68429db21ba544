//! mailfwd's test kit, used only as a dev-dependency: the one SMTP sink standing in for
//! destinations ([`sink`]), the one SMTP test client ([`client`]), and the shared
//! fixtures and store builders ([`fixtures`], [`stores`]), and an in-process S3 server
//! that fails on demand ([`s3`]). Every suite uses these
//! instead of keeping a copy of its own.
//!
//! Test support panics on anything unexpected, with a message saying what: that is
//! how a test fails.

#![allow(clippy::missing_panics_doc)]

pub mod client;
pub mod fixtures;
pub mod s3;
pub mod sink;
mod sink_conn;
pub mod stores;

pub use client::{Client, Reply, queued_id};
pub use fixtures::{addr, rule};
pub use sink::{Mode, Options, Sink};
pub use stores::Stores;
