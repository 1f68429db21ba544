//! Session tests: SMTP conversations over in-memory streams (and, in `server`, over
//! real TCP sockets), each checking the replies and what was or was not stored.
#![allow(clippy::unwrap_used)]

#[path = "session/harness.rs"]
mod harness;

#[path = "session/admission.rs"]
mod admission;
#[path = "session/commands.rs"]
mod commands;
#[path = "session/data.rs"]
mod data;
#[path = "session/envelope.rs"]
mod envelope;
#[path = "session/exhaustion.rs"]
mod exhaustion;
#[path = "session/fuzz.rs"]
mod fuzz;
#[path = "session/limits.rs"]
mod limits;
#[path = "session/policy.rs"]
mod policy;
#[path = "session/server.rs"]
mod server;
#[path = "session/smuggling.rs"]
mod smuggling;
#[path = "session/storage.rs"]
mod storage;
#[path = "session/stress.rs"]
mod stress;
#[path = "session/tls.rs"]
mod tls;
