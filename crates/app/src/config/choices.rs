//! The settings that take one of a few words.

use serde::{Deserialize, Serialize};

/// What a bare CR or LF in message data gets (ADR 0004), on every inbound path.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BareLineEndings {
    /// Refuse the message.
    Reject,
    /// Store a bare LF as CRLF (this changes the body, so a DKIM signature over it
    /// breaks); a bare CR is still refused.
    Normalize,
}

impl From<BareLineEndings> for mailfwd_domain::BareLineEndings {
    fn from(setting: BareLineEndings) -> Self {
        match setting {
            BareLineEndings::Reject => mailfwd_domain::BareLineEndings::Reject,
            BareLineEndings::Normalize => mailfwd_domain::BareLineEndings::Normalize,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
