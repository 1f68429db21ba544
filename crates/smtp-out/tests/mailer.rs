//! The outbound mailer against real servers on 127.0.0.x: the testkit's SMTP sink
//! (recording envelopes and exact bytes) and, for MX routing, a DNS server.

#[path = "mailer/body.rs"]
mod body;
#[path = "mailer/delivery.rs"]
mod delivery;
#[path = "mailer/dns.rs"]
mod dns;
#[path = "mailer/encoding.rs"]
mod encoding;
#[path = "mailer/grouped.rs"]
mod grouped;
#[path = "mailer/large.rs"]
mod large;
#[path = "mailer/limits.rs"]
mod limits;
#[path = "mailer/pipelining.rs"]
mod pipelining;
#[path = "mailer/private.rs"]
mod private;
#[path = "mailer/protocol.rs"]
mod protocol;
#[path = "mailer/routing.rs"]
mod routing;
#[path = "mailer/session.rs"]
mod session;

use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::delivery::{DeliveryOutcome, Mailer, Outgoing};
use mailfwd_smtp_out::{MailerConfig, SmtpMailer, SmtpTimeouts};

use mailfwd_testkit::sink::Sink;

/// Sending a message to one recipient, whose one outcome is the answer.
#[async_trait]
pub trait SendOne {
    /// Sends `message` (to one recipient) and returns its outcome.
    async fn send_one(&self, message: Outgoing) -> DeliveryOutcome;
}

#[async_trait]
impl<M: Mailer> SendOne for M {
    async fn send_one(&self, message: Outgoing) -> DeliveryOutcome {
        let mut outcomes = self.send(message).await;
        assert_eq!(outcomes.len(), 1, "one outcome per recipient: {outcomes:?}");
        outcomes.remove(0)
    }
}

/// Short timeouts, so that a test that goes wrong fails instead of hanging.
pub fn config(port: u16) -> MailerConfig {
    let five = Duration::from_secs(5);
    MailerConfig {
        hostname: "mailfwd.test".to_owned(),
        port,
        connect_timeout: Duration::from_secs(2),
        timeouts: SmtpTimeouts {
            greeting: five,
            ehlo: five,
            mail: five,
            rcpt: five,
            data_init: five,
            data_block: five,
            data_end: five,
        },
        dns_timeout: Duration::from_millis(500),
        // The test servers are all on 127.0.0.x.
        deliver_to_private_addresses: true,
        ..MailerConfig::default()
    }
}

/// A mailer that relays everything to `sink`.
pub fn relay_to(sink: &Sink) -> SmtpMailer {
    relay_with(sink, config(25))
}

/// A mailer with `config` that relays everything to `sink`.
pub fn relay_with(sink: &Sink, config: MailerConfig) -> SmtpMailer {
    SmtpMailer::new(MailerConfig {
        relay: Some(sink.addr.to_string()),
        ..config
    })
    .expect("a mailer")
}

#[test]
fn a_mailer_can_be_built_outside_a_runtime() {
    let dns: std::net::SocketAddr = "127.0.0.1:53".parse().expect("an address");
    assert!(SmtpMailer::with_name_servers(config(25), &[dns]).is_ok());
    // The system's resolver configuration (only read here: no query is sent).
    assert!(SmtpMailer::new(config(25)).is_ok());
    let relay = MailerConfig {
        relay: Some("smtp.example.test:587".to_owned()),
        ..config(25)
    };
    assert!(SmtpMailer::new(relay).is_ok());
}

#[test]
fn malformed_settings_are_refused() {
    use mailfwd_smtp_out::MailerError;
    let relay = MailerConfig {
        relay: Some("smtp.example.test:port".to_owned()),
        ..config(25)
    };
    assert!(matches!(
        SmtpMailer::new(relay),
        Err(MailerError::InvalidRelay(relay)) if relay == "smtp.example.test:port"
    ));
    let hostname = MailerConfig {
        hostname: "two words".to_owned(),
        relay: Some("127.0.0.1:25".to_owned()),
        ..config(25)
    };
    assert!(matches!(
        SmtpMailer::new(hostname),
        Err(MailerError::InvalidHostname(_))
    ));
}
