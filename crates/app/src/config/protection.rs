//! The settings by which the email store protects itself: its rates and when it sheds
//! load (ADR 0023).

use mailfwd_layers::ThrottleConfig;

use super::Config;

impl Config {
    /// The email store's rates; each unset one limits nothing.
    #[must_use]
    pub fn throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            messages_per_second: self.throttle_messages_per_second,
            bytes_per_second: self.throttle_bytes_per_second,
            client_messages_per_second: self.throttle_client_messages_per_second,
            client_bytes_per_second: self.throttle_client_bytes_per_second,
        }
    }

    /// The free space, in bytes, under which new mail is refused; 0 never refuses.
    /// Unset, it is one and a half times the largest message, as Postfix keeps: room
    /// for the message being received and for recording what happens to mail already
    /// accepted.
    #[must_use]
    pub fn disk_free_floor(&self) -> u64 {
        self.disk_free_floor.unwrap_or_else(|| {
            self.max_message_size
                .saturating_add(self.max_message_size / 2)
        })
    }
}
