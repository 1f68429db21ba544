//! The forwarding engine driven through the memory ports and a scripted mailer.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod backlog;
mod deadline;
mod delivery;
mod destinations;
mod grouping;
mod world;
