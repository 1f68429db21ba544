//! How long a session waits for its client: the configured timeouts normally, shorter
//! ones while the server is under stress (see `stress`). A wait already under way
//! follows stress as it begins and ends, so an idle client is cut as soon as it has
//! waited longer than the stressed limit, not when its old timeout runs out.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::config::SmtpConfig;

/// One timeout, normally and under stress.
#[derive(Debug, Clone, Copy)]
struct Limit {
    normal: Duration,
    stressed: Duration,
}

impl Limit {
    fn in_force(self, stressed: bool) -> Duration {
        if stressed {
            self.stressed.min(self.normal)
        } else {
            self.normal
        }
    }
}

/// A session's timeouts, and the stress signal they follow.
#[derive(Debug)]
pub(crate) struct Timeouts {
    command: Limit,
    data: Limit,
    /// `None` for a session outside a server (tests, [`crate::run_session`]): never
    /// under stress.
    stress: Option<watch::Receiver<bool>>,
}

impl Timeouts {
    pub(crate) fn new(config: &SmtpConfig, stress: Option<watch::Receiver<bool>>) -> Self {
        Timeouts {
            command: Limit {
                normal: config.command_timeout,
                stressed: config.stress_command_timeout,
            },
            data: Limit {
                normal: config.data_timeout,
                stressed: config.stress_data_timeout,
            },
            stress,
        }
    }

    /// A wait, starting now, for a command line (and for the client to take the
    /// replies before it).
    pub(crate) fn command(&self) -> Deadline {
        self.deadline(self.command)
    }

    /// A wait, starting now, for the next piece of message data.
    pub(crate) fn data(&self) -> Deadline {
        self.deadline(self.data)
    }

    /// The command timeout in force now.
    pub(crate) fn command_now(&self) -> Duration {
        self.command.in_force(self.under_stress())
    }

    /// Whether the server is under stress now.
    pub(crate) fn under_stress(&self) -> bool {
        self.stress.as_ref().is_some_and(|stress| *stress.borrow())
    }

    fn deadline(&self, limit: Limit) -> Deadline {
        Deadline {
            started: Instant::now(),
            limit,
            stress: self.stress.clone(),
        }
    }
}

/// One wait for the client, measured from when it started.
#[derive(Debug)]
pub(crate) struct Deadline {
    started: Instant,
    limit: Limit,
    stress: Option<watch::Receiver<bool>>,
}

impl Deadline {
    /// Resolves once the wait has lasted longer than the limit in force. The limit is
    /// taken again whenever stress begins or ends, always counted from the start of the
    /// wait. Cancel-safe.
    pub(crate) async fn expired(&mut self) {
        loop {
            let stressed = self
                .stress
                .as_mut()
                .is_some_and(|stress| *stress.borrow_and_update());
            let deadline = self.started + self.limit.in_force(stressed);
            let Some(stress) = self.stress.as_mut() else {
                return sleep_until(deadline).await;
            };
            tokio::select! {
                () = sleep_until(deadline) => return,
                changed = stress.changed() => {
                    if changed.is_err() {
                        // The server is gone: the limit in force stays.
                        return sleep_until(deadline).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORMAL: Duration = Duration::from_secs(300);
    const STRESSED: Duration = Duration::from_secs(10);

    fn timeouts(stress: &watch::Sender<bool>) -> Timeouts {
        let config = SmtpConfig {
            command_timeout: NORMAL,
            stress_command_timeout: STRESSED,
            data_timeout: NORMAL * 2,
            stress_data_timeout: STRESSED * 3,
            ..SmtpConfig::default()
        };
        Timeouts::new(&config, Some(stress.subscribe()))
    }

    /// How long after now `deadline` expires.
    async fn expires_after(mut deadline: Deadline) -> Duration {
        let waiting = Instant::now();
        deadline.expired().await;
        waiting.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn without_stress_the_normal_timeout_holds() {
        let stress = watch::Sender::new(false);
        let timeouts = timeouts(&stress);
        assert_eq!(expires_after(timeouts.command()).await, NORMAL);
        assert_eq!(expires_after(timeouts.data()).await, NORMAL * 2);
        assert_eq!(timeouts.command_now(), NORMAL);
    }

    #[tokio::test(start_paused = true)]
    async fn under_stress_the_shorter_timeouts_hold() {
        let stress = watch::Sender::new(true);
        let timeouts = timeouts(&stress);
        assert!(timeouts.under_stress());
        assert_eq!(expires_after(timeouts.command()).await, STRESSED);
        assert_eq!(expires_after(timeouts.data()).await, STRESSED * 3);
        assert_eq!(timeouts.command_now(), STRESSED);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_the_stressed_limit_ends_when_stress_begins() {
        let stress = watch::Sender::new(false);
        let deadline = timeouts(&stress).command();
        let signal = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stress.send_replace(true);
            std::future::pending::<Duration>().await
        };
        let expired = tokio::select! {
            expired = expires_after(deadline) => expired,
            never = signal => never,
        };
        assert_eq!(
            expired,
            Duration::from_secs(60),
            "cut the moment stress began"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_younger_wait_gets_the_rest_of_the_stressed_limit() {
        let stress = watch::Sender::new(false);
        let deadline = timeouts(&stress).command();
        let signal = async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            stress.send_replace(true);
            std::future::pending::<Duration>().await
        };
        let expired = tokio::select! {
            expired = expires_after(deadline) => expired,
            never = signal => never,
        };
        assert_eq!(expired, STRESSED, "counted from the start of the wait");
    }

    #[tokio::test(start_paused = true)]
    async fn when_stress_ends_the_normal_timeout_returns() {
        let stress = watch::Sender::new(true);
        let deadline = timeouts(&stress).command();
        let signal = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            stress.send_replace(false);
            std::future::pending::<Duration>().await
        };
        let expired = tokio::select! {
            expired = expires_after(deadline) => expired,
            never = signal => never,
        };
        assert_eq!(expired, NORMAL);
    }
}
