//! The gRPC API over a real socket, against real stores (SQLite + files in a temporary
//! directory), driven by the generated tonic client. One test binary for the crate.

#![allow(clippy::unwrap_used, missing_docs)]

mod api {
    mod emails;
    pub mod harness;
    mod ingest;
    mod meta;
    mod policy;
    mod reprocess;
}
