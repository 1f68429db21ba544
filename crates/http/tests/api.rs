//! The HTTP API as a client sees it: `mailfwd_http::router` served by
//! `mailfwd_http::serve` on 127.0.0.1:0 over a fresh SQLite database per test, driven
//! with reqwest over the real socket.
#![allow(clippy::unwrap_used)]

#[path = "api/harness.rs"]
mod harness;

#[path = "api/auth.rs"]
mod auth;
#[path = "api/busy.rs"]
mod busy;
#[path = "api/emails.rs"]
mod emails;
#[path = "api/errors.rs"]
mod errors;
#[path = "api/forwards.rs"]
mod forwards;
#[path = "api/import.rs"]
mod import;
#[path = "api/loops.rs"]
mod loops;
#[path = "api/meta.rs"]
mod meta;
