//! Delivery scheduling and outbound SMTP timeouts (ADR 0016): their checks, and the
//! engine and mailer settings derived from them.

use std::time::Duration;

use mailfwd_forwarder::DestinationLimits;
use mailfwd_smtp_out::SmtpTimeouts;

use super::{Config, ConfigError};

/// The attempt timeout when none is set and the lease is long: the longest stage
/// timeout of Postfix (`smtp_data_done_timeout`).
const MAX_DERIVED_ATTEMPT: Duration = Duration::from_secs(10 * 60);

impl Config {
    /// An attempt must end, and be recorded, inside its lease; every limit must be one.
    pub(super) fn check_delivery(&self) -> Result<(), ConfigError> {
        let rule = |setting, rule| Err(ConfigError::Rule { setting, rule });
        if self.delivery_lease.is_zero() {
            return rule("delivery_lease", "must be more than 0");
        }
        let attempt_timeout = self.attempt_timeout();
        if attempt_timeout.is_zero() {
            return rule("delivery_attempt_timeout", "must be more than 0");
        }
        if attempt_timeout > self.delivery_lease.mul_f64(0.8) {
            return rule(
                "delivery_attempt_timeout",
                "must be at most four fifths of delivery_lease (MAILFWD_DELIVERY_LEASE): \
                 an attempt must end and be recorded before its lease runs out, or another \
                 worker sends the message again",
            );
        }
        if self.destination_initial_concurrency == 0 {
            return rule("destination_initial_concurrency", "must be at least 1");
        }
        if self.destination_concurrency_limit < self.destination_initial_concurrency {
            return rule(
                "destination_concurrency_limit",
                "must be at least destination_initial_concurrency",
            );
        }
        if self.destination_recipient_limit == 0 {
            return rule("destination_recipient_limit", "must be at least 1");
        }
        if self.destination_failed_cohort == 0 {
            return rule("destination_failed_cohort", "must be at least 1");
        }
        if self.destination_min_backoff.is_zero()
            || self.destination_max_backoff < self.destination_min_backoff
        {
            return rule(
                "destination_max_backoff",
                "must be at least destination_min_backoff, which must be more than 0",
            );
        }
        let timeouts = [
            ("smtp_out_connect_timeout", self.smtp_out_connect_timeout),
            ("smtp_out_helo_timeout", self.smtp_out_helo_timeout),
            ("smtp_out_mail_timeout", self.smtp_out_mail_timeout),
            ("smtp_out_rcpt_timeout", self.smtp_out_rcpt_timeout),
            (
                "smtp_out_data_init_timeout",
                self.smtp_out_data_init_timeout,
            ),
            (
                "smtp_out_data_xfer_timeout",
                self.smtp_out_data_xfer_timeout,
            ),
            (
                "smtp_out_data_done_timeout",
                self.smtp_out_data_done_timeout,
            ),
        ];
        if let Some((setting, _)) = timeouts.iter().find(|(_, timeout)| timeout.is_zero()) {
            return rule(setting, "must be more than 0");
        }
        Ok(())
    }

    /// The longest one delivery attempt may take: the setting, else four fifths of the
    /// lease, at most 10 minutes.
    #[must_use]
    pub fn attempt_timeout(&self) -> Duration {
        self.delivery_attempt_timeout
            .unwrap_or_else(|| self.delivery_lease.mul_f64(0.8).min(MAX_DERIVED_ATTEMPT))
    }

    /// The outbound SMTP stage timeouts (Postfix's names and defaults).
    #[must_use]
    pub fn smtp_out_timeouts(&self) -> SmtpTimeouts {
        SmtpTimeouts {
            greeting: self.smtp_out_helo_timeout,
            ehlo: self.smtp_out_helo_timeout,
            mail: self.smtp_out_mail_timeout,
            rcpt: self.smtp_out_rcpt_timeout,
            data_init: self.smtp_out_data_init_timeout,
            data_block: self.smtp_out_data_xfer_timeout,
            data_end: self.smtp_out_data_done_timeout,
        }
    }

    /// Per-destination concurrency and the memory of unreachable destinations.
    #[must_use]
    pub fn destination_limits(&self) -> DestinationLimits {
        DestinationLimits {
            initial_concurrency: self.destination_initial_concurrency,
            concurrency_limit: self.destination_concurrency_limit,
            failed_cohort: self.destination_failed_cohort,
            min_backoff: self.destination_min_backoff,
            max_backoff: self.destination_max_backoff,
            recipient_limit: self.destination_recipient_limit,
            ..DestinationLimits::default()
        }
    }
}
