//! End-to-end: the real `mailfwd` binary, driven over real sockets and its command line.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod deliverability;
mod destinations;
mod encoding;
mod forward;
mod grouping;
mod harness;
mod loops;
mod migration;
mod postgres;
mod postgres_outage;
mod private_postgres;
mod python_grpc;
mod reprocess;
mod retention;
mod rules;
mod schemathesis;
mod slow;
mod smtp;
mod smuggling;
mod srs;
mod startup;
mod throttling;
