//! What can go wrong configuring SRS and reversing an SRS address.

use thiserror::Error;

use crate::address::AddressError;

/// Why an SRS configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrsConfigError {
    /// No secret was given: there is nothing to sign with.
    #[error("SRS needs at least one secret to sign with")]
    NoSecret,
    /// A secret is the empty string (the index counts from 0, the signing secret).
    #[error("SRS secret number {0} is empty")]
    EmptySecret(usize),
    /// The maximum age is not shorter than the 1024-day cycle of the timestamp, so
    /// every timestamp would pass.
    #[error("the SRS maximum age of {0} days must be below 1024, the cycle of its timestamp")]
    MaxAgeTooLong(u32),
    /// The SRS domain is an address literal: bounces need a name with an MX record.
    #[error("the SRS domain '{0}' is an address literal; it must be a domain name")]
    AddressLiteral(String),
}

/// Why an address was not reversed. Each message names the address and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrsError {
    /// The local part does not start with `SRS0` or `SRS1` and a separator.
    #[error("'{0}' is not an SRS address: its local part does not start with SRS0= or SRS1=")]
    NotSrs(String),
    /// A field of the SRS address is missing or unreadable.
    #[error("the SRS address '{address}' is malformed: {reason}")]
    Malformed {
        /// The address as received.
        address: String,
        /// What is missing or wrong.
        reason: &'static str,
    },
    /// The hash matches none of our secrets: forged, altered, or made by someone else.
    #[error(
        "the SRS address '{0}' has a hash that none of our secrets made: it is forged or was altered"
    )]
    BadHash(String),
    /// The timestamp is older than the maximum age.
    #[error(
        "the SRS address '{address}' expired: it is {age_days} days old and the limit is {max_age_days}"
    )]
    Expired {
        /// The address as received.
        address: String,
        /// Its age, counted back around the 1024-day cycle.
        age_days: u64,
        /// The configured maximum.
        max_age_days: u32,
    },
    /// The hash verified, but what it reverses to is not a valid address.
    #[error("the SRS address '{address}' reverses to an invalid address: {error}")]
    BadOriginal {
        /// The address as received.
        address: String,
        /// Why the reversed address is invalid.
        error: AddressError,
    },
}
