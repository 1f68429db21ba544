//! How the S3 client rides out a flaky server: timeouts and retries, chosen here rather
//! than left to object_store's defaults (ten retries over up to three minutes).
//!
//! The budget is set by who waits: an SMTP client waiting for its `250` after the
//! final dot (RFC 5321 gives it ten minutes, many give up sooner), with the session's
//! whole body behind one commit. A few quick retries ride out a 500, a 503 `SlowDown`
//! or a dropped connection; a server down for longer should turn into a `451` soon, so
//! the client queues the message and tries again later, rather than hang the session.
//!
//! object_store retries 5xx, 429, 408, connection failures, and timeouts of requests
//! that are safe to repeat, which for S3 includes a plain `PUT` and each part of a
//! multipart upload. The environment may still override the timeouts (`AWS_TIMEOUT`,
//! `AWS_CONNECT_TIMEOUT`, as humantime durations such as `10s`).

use std::time::Duration;

use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// Retries per request after the first attempt: with the backoff below, about 2 s of
/// waiting in all before an error reaches the caller.
pub const MAX_RETRIES: usize = 4;

/// No retry starts later than this after a request's first attempt, so one request
/// (one part, or a small body) fails within about `RETRY_TIMEOUT + REQUEST_TIMEOUT`.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// The first wait before a retry; later ones grow by up to twice the previous one
/// (decorrelated jitter), up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One attempt of one request, connection to last byte: a 5 MiB part needs only
/// 1.4 Mbit/s to fit, and a stalled server is given up on (and retried) in time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connecting: a reachable server answers in milliseconds.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The retry settings of every S3 request (see the module documentation).
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_TIMEOUT,
    }
}

/// The HTTP client settings of the S3 store, before the environment's own.
pub(crate) fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT)
}
