//! SRS, the Sender Rewriting Scheme, in the format postsrsd 2.x writes (ADR 0018).
//!
//! A forwarder that relays mail with the original envelope sender fails the sender's
//! SPF check, so the sender is rewritten into the forwarder's own domain:
//! `alice@example.org` becomes `SRS0=HHHH=TT=example.org=alice@srs-domain`. Bounces to
//! that address come back to the forwarder, which checks the hash and the age and sends
//! them on to `alice@example.org`. This module is pure: the clock is an argument.

mod codec;
mod error;

use std::time::{SystemTime, UNIX_EPOCH};

pub use error::{SrsConfigError, SrsError};

use crate::address::{Domain, EmailAddress};

/// How long a rewritten address can be reversed, in days, unless configured otherwise
/// (postsrsd's and pysrs' default).
pub const DEFAULT_MAX_AGE_DAYS: u32 = 21;

/// Rewrites envelope senders into the SRS domain and reverses such addresses.
#[derive(Clone)]
pub struct Srs {
    domain: Domain,
    secrets: Vec<Vec<u8>>,
    max_age_days: u32,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srs")
            .field("domain", &self.domain)
            .field("secrets", &format_args!("[{} hidden]", self.secrets.len()))
            .field("max_age_days", &self.max_age_days)
            .finish()
    }
}

/// Which kind of SRS address a local part is, and what follows its tag and separator.
enum Tagged<'a> {
    /// `SRS0=hash=stamp=host=user`: made by a forwarder from the original sender.
    Srs0(&'a str),
    /// `SRS1=hash=host==hash=stamp=host=user`: an SRS0 address forwarded once more.
    Srs1(&'a str),
}

/// Splits off the `SRS0`/`SRS1` tag (any case) and the separator after it (`=`, `-` or
/// `+`), as postsrsd recognises them.
fn tagged(local: &str) -> Option<Tagged<'_>> {
    let tag = local.get(..4)?;
    let rest = local.get(5..)?;
    if !matches!(local.as_bytes().get(4), Some(b'=' | b'-' | b'+')) {
        return None;
    }
    if tag.eq_ignore_ascii_case("SRS0") {
        Some(Tagged::Srs0(rest))
    } else if tag.eq_ignore_ascii_case("SRS1") {
        Some(Tagged::Srs1(rest))
    } else {
        None
    }
}

/// Whole days since the Unix epoch; a clock set before 1970 counts as day 0.
fn day_of(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 86_400)
}

/// Splits `s` at its first `=` into two parts that must both be non-empty.
fn split_field(s: &str) -> Option<(&str, &str)> {
    s.split_once('=')
        .filter(|(head, tail)| !head.is_empty() && !tail.is_empty())
}

impl Srs {
    /// An SRS rewriter for `domain`. The first secret signs; every secret verifies, so a
    /// new secret can be put first while the old one still reverses addresses in flight.
    ///
    /// # Errors
    /// [`SrsConfigError`] if there is no secret, a secret is empty, or `max_age_days`
    /// does not fit inside the 1024-day cycle of the timestamp.
    pub fn new(
        domain: Domain,
        secrets: Vec<String>,
        max_age_days: u32,
    ) -> Result<Self, SrsConfigError> {
        if secrets.is_empty() {
            return Err(SrsConfigError::NoSecret);
        }
        if let Some(index) = secrets.iter().position(String::is_empty) {
            return Err(SrsConfigError::EmptySecret(index));
        }
        Srs::check_settings(&domain, max_age_days)?;
        Ok(Srs {
            domain,
            secrets: secrets.into_iter().map(String::into_bytes).collect(),
            max_age_days,
        })
    }

    /// Checks the settings other than the secrets, so a configuration can be checked
    /// before its secret is read: the domain must be a name and the maximum age must fit
    /// inside the 1024-day cycle of the timestamp.
    ///
    /// # Errors
    /// [`SrsConfigError::AddressLiteral`] or [`SrsConfigError::MaxAgeTooLong`].
    pub fn check_settings(domain: &Domain, max_age_days: u32) -> Result<(), SrsConfigError> {
        if domain.is_address_literal() {
            return Err(SrsConfigError::AddressLiteral(domain.to_string()));
        }
        if u64::from(max_age_days) >= codec::DAY_SLOTS {
            return Err(SrsConfigError::MaxAgeTooLong(max_age_days));
        }
        Ok(())
    }

    /// Whether `local` (a local part) starts like an SRS address: `SRS0` or `SRS1`, in
    /// any case, and a separator.
    #[must_use]
    pub fn is_tagged(local: &str) -> bool {
        tagged(local).is_some()
    }

    /// The domain rewritten senders are put in.
    #[must_use]
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The envelope sender to forward with, for a message whose sender is `sender`.
    ///
    /// A null sender (`None`, `MAIL FROM:<>`) stays null. A plain sender becomes
    /// `SRS0=…@srs-domain`; an `SRS0` address of another forwarder becomes `SRS1`, and
    /// an `SRS1` address is re-signed for our domain, as postsrsd does. A sender already
    /// in the SRS domain is left as it is (postsrsd does the same, and reversing it
    /// would gain nothing). A sender that cannot be rewritten — a quoted local part, a
    /// malformed `SRS1` address, or a result longer than an address may be — is also
    /// left as it is, which is what postsrsd does when it cannot rewrite.
    #[must_use]
    pub fn forward(&self, sender: Option<&EmailAddress>, now: SystemTime) -> Option<EmailAddress> {
        let sender = sender?;
        Some(
            self.rewrite(sender, day_of(now))
                .unwrap_or_else(|| sender.clone()),
        )
    }

    fn rewrite(&self, sender: &EmailAddress, day: u64) -> Option<EmailAddress> {
        if sender.domain() == &self.domain {
            return None;
        }
        let local = sender.local_part();
        if local.starts_with('"') {
            return None;
        }
        let signing = self.secrets.first()?;
        let local_part = match tagged(local) {
            Some(Tagged::Srs1(rest)) => {
                // Keep the first forwarder's host and SRS0 payload; sign them afresh.
                let (_old_hash, payload) = split_field(rest)?;
                let (host, user) = split_field(payload)?;
                let hash = codec::hash(signing, &[host, user]);
                format!("SRS1={hash}={host}={user}")
            }
            Some(Tagged::Srs0(_)) => {
                // Wrap: the SRS0 address after its tag ("=HHHH=TT=host=user"), and the
                // forwarder that made it, so a bounce can be handed back to it.
                let host = sender.domain().as_str();
                let user = &local[4..];
                let hash = codec::hash(signing, &[host, user]);
                format!("SRS1={hash}={host}={user}")
            }
            None => {
                let stamp = codec::stamp(day);
                let host = sender.domain().as_str();
                let hash = codec::hash(signing, &[&stamp, host, local]);
                format!("SRS0={hash}={stamp}={host}={local}")
            }
        };
        EmailAddress::parse_rewritten(&format!("{local_part}@{}", self.domain)).ok()
    }

    /// The address a bounce to `address` (an SRS address of ours) is sent on to: the
    /// original sender for `SRS0`, or the other forwarder's `SRS0` address for `SRS1`.
    /// The domain of `address` is not looked at: which domains are SRS domains is for
    /// the caller to decide, as in postsrsd.
    ///
    /// # Errors
    /// [`SrsError::NotSrs`] if it is not an SRS address at all; [`SrsError::Malformed`]
    /// if a field is missing or unreadable; [`SrsError::Expired`] if an `SRS0` stamp is
    /// older than the maximum age; [`SrsError::BadHash`] if no secret of ours made it.
    pub fn reverse(
        &self,
        address: &EmailAddress,
        now: SystemTime,
    ) -> Result<EmailAddress, SrsError> {
        let malformed = |reason| SrsError::Malformed {
            address: address.to_string(),
            reason,
        };
        match tagged(address.local_part()) {
            None => Err(SrsError::NotSrs(address.to_string())),
            Some(Tagged::Srs0(rest)) => {
                let mut fields = rest.splitn(4, '=');
                let mut next = |reason| {
                    fields
                        .next()
                        .filter(|field| !field.is_empty())
                        .ok_or_else(|| malformed(reason))
                };
                let hash = next("the hash is missing")?;
                let stamp = next("the timestamp is missing")?;
                let host = next("the original domain is missing")?;
                let user = next("the original local part is missing")?;
                let slot = codec::stamp_slot(stamp)
                    .ok_or_else(|| malformed("the timestamp is not two base32 characters"))?;
                let age = codec::age_in_days(slot, day_of(now));
                if age > u64::from(self.max_age_days) {
                    return Err(SrsError::Expired {
                        address: address.to_string(),
                        age_days: age,
                        max_age_days: self.max_age_days,
                    });
                }
                self.verify(address, hash, &[stamp, host, user])?;
                EmailAddress::parse(&format!("{user}@{host}")).map_err(|error| {
                    SrsError::BadOriginal {
                        address: address.to_string(),
                        error,
                    }
                })
            }
            Some(Tagged::Srs1(rest)) => {
                let (hash, payload) =
                    split_field(rest).ok_or_else(|| malformed("the hash is missing"))?;
                let (host, user) = split_field(payload).ok_or_else(|| {
                    malformed("the first forwarder's domain or address is missing")
                })?;
                self.verify(address, hash, &[host, user])?;
                EmailAddress::parse_rewritten(&format!("SRS0{user}@{host}")).map_err(|error| {
                    SrsError::BadOriginal {
                        address: address.to_string(),
                        error,
                    }
                })
            }
        }
    }

    /// Checks `hash` against every secret, each comparison in constant time.
    fn verify(&self, address: &EmailAddress, hash: &str, fields: &[&str]) -> Result<(), SrsError> {
        if hash.len() < codec::HASH_LEN {
            return Err(SrsError::Malformed {
                address: address.to_string(),
                reason: "the hash is shorter than four characters",
            });
        }
        let matched = self.secrets.iter().fold(false, |matched, secret| {
            codec::hash_matches(hash, &codec::hash(secret, fields)) | matched
        });
        if matched {
            Ok(())
        } else {
            Err(SrsError::BadHash(address.to_string()))
        }
    }
}

#[cfg(test)]
mod tests;
