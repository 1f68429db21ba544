//! EHLO/HELO, MAIL and RCPT: who the client is, who the mail is from and whether each
//! recipient is one of ours.

use std::borrow::Cow;

use mailfwd_domain::Encoding;
use mailfwd_domain::IngestError;
use mailfwd_domain::email::Client;
use mailfwd_domain::ingest::Origin;
use smtp_proto::{
    MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE,
    MAIL_CONPERM, MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, MailFrom,
    RCPT_CONNEG, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
    RCPT_RRVS_CONTINUE, RCPT_RRVS_REJECT, RcptTo,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

use super::{Session, Transaction};
use crate::path;
use crate::reply::Reply;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn hello(&mut self, host: &str, extended: bool) -> Reply {
        self.reset().await;
        self.helo = Some(host.to_owned());
        self.extended = extended;
        let hostname = &self.config.hostname;
        if extended {
            let max_size = self.ingest.limits().message.max_size;
            Reply::ehlo(hostname, max_size, self.offers_starttls())
        } else {
            Reply::helo(hostname)
        }
    }

    /// MAIL FROM. The email store is asked here whether it takes a new email from
    /// this client at all, so a client told to slow down (or a store shedding load)
    /// never sends a body that would be refused.
    pub(super) async fn mail(&mut self, from: &MailFrom<Cow<'_, str>>) -> Reply {
        if self.helo.is_none() {
            return Reply::bad_sequence("Send EHLO or HELO first");
        }
        if self.tx.is_some() {
            return Reply::bad_sequence("Nested MAIL command");
        }
        if !self.extended && has_parameters(from) {
            return Reply::parameters_need_ehlo();
        }
        if let Some(param) = unsupported_mail_parameter(from) {
            return Reply::unsupported_parameter(param);
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            info!(peer = %self.peer, "sender refused: UTF-8 address without SMTPUTF8");
            return Reply::needs_smtputf8();
        }
        let limit = self.ingest.limits().message.max_size;
        if u64::try_from(from.size).unwrap_or(u64::MAX) > limit {
            info!(peer = %self.peer, size = from.size, limit, "message refused at MAIL: too large");
            return Reply::too_large();
        }
        let sender = if from.address.is_empty() {
            None
        } else {
            match path::mailbox(&from.address) {
                Ok(sender) => Some(sender),
                Err(error) => return Reply::bad_sender(&error.to_string()),
            }
        };
        let origin = Origin {
            peer: Some(self.peer.to_string()),
            helo: self.helo.clone(),
            tls: self.conn.is_tls(),
            declared: Encoding {
                eight_bit: from.flags & MAIL_BODY_8BITMIME != 0,
                smtputf8,
                utf8_headers: false,
            },
            // The same client as the connection limits count: one IPv6 host holds a
            // whole network, and must not get a new allowance per address.
            client: Client::from_ip(self.peer.ip(), self.config.ipv6_client_prefix),
        };
        let tx = match self.ingest.begin(sender, origin).await {
            Ok(tx) => tx,
            Err(error) => {
                info!(peer = %self.peer, %error, "sender refused: the email store says not now");
                return Reply::for_ingest(&error);
            }
        };
        self.smtputf8 = smtputf8;
        self.bdat_refused = None;
        self.tx = Some(Transaction::Envelope(tx));
        Reply::sender_ok()
    }

    pub(super) async fn rcpt(&mut self, to: &RcptTo<Cow<'_, str>>, line: &[u8]) -> Reply {
        let peer = self.peer;
        // A new recipient starts a new attempt: no earlier chunk is discarded any more.
        self.bdat_refused = None;
        let tx = match self.tx.as_mut() {
            None => return Reply::bad_sequence("Send MAIL first"),
            Some(Transaction::Body(_)) => {
                return Reply::bad_sequence("RCPT not allowed during BDAT");
            }
            Some(Transaction::Envelope(tx)) => tx,
        };
        if let Some(param) = unsupported_rcpt_parameter(to) {
            return Reply::unsupported_parameter(param);
        }
        if !self.smtputf8 && !to.address.is_ascii() {
            info!(%peer, "recipient refused: UTF-8 address without SMTPUTF8");
            return Reply::needs_smtputf8();
        }
        if path::has_source_route(line) {
            let error = IngestError::RelayDenied(to.address.to_string());
            info!(%peer, %error, "recipient refused: source route");
            return Reply::for_ingest(&error);
        }
        // `<postmaster>` without a domain must be accepted (RFC 5321 §4.5.1).
        let bare_postmaster = (to.address.is_empty() && path::is_bare_postmaster(line))
            .then(|| self.ingest.bare_postmaster())
            .flatten();
        let recipient = match bare_postmaster.map_or_else(|| path::mailbox(&to.address), Ok) {
            Ok(recipient) => recipient,
            Err(error) => return Reply::bad_recipient(&error.to_string()),
        };
        match tx.add_recipient(&recipient).await {
            Ok(added) => {
                debug!(%peer, %recipient, ?added, "recipient accepted");
                Reply::recipient_ok()
            }
            Err(error) => {
                info!(%peer, %recipient, %error, "recipient refused");
                Reply::for_ingest(&error)
            }
        }
    }
}

/// Whether MAIL carries any ESMTP parameter: after plain HELO none may be used
/// (RFC 5321 section 4.1.1.1).
fn has_parameters(from: &MailFrom<Cow<'_, str>>) -> bool {
    from.flags != 0 || from.size != 0 || unsupported_mail_parameter(from).is_some()
}

/// A MAIL parameter of an extension we do not offer. SIZE, BODY=7BIT/8BITMIME and
/// SMTPUTF8 are the ones we do.
fn unsupported_mail_parameter(from: &MailFrom<Cow<'_, str>>) -> Option<&'static str> {
    let flags = [
        (MAIL_BODY_BINARYMIME, "BODY=BINARYMIME"),
        (MAIL_RET_FULL | MAIL_RET_HDRS, "RET"),
        (MAIL_REQUIRETLS, "REQUIRETLS"),
        (MAIL_CONPERM, "CONPERM"),
        (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"),
    ];
    let values = [
        (from.by != 0, "BY"),
        (from.mt_priority != 0, "MT-PRIORITY"),
        (from.env_id.is_some(), "ENVID"),
        (from.trans_id.is_some(), "TRANSID"),
        (from.auth.is_some(), "AUTH"),
        (from.solicit.is_some(), "SOLICIT"),
        (from.mtrk.is_some(), "MTRK"),
        (from.hold_for != 0, "HOLDFOR"),
        (from.hold_until != 0, "HOLDUNTIL"),
    ];
    flags
        .iter()
        .map(|&(flag, name)| (from.flags & flag != 0, name))
        .chain(values)
        .find_map(|(present, name)| present.then_some(name))
}

/// A RCPT parameter: none are offered (no DSN, RRVS or CONNEG).
fn unsupported_rcpt_parameter(to: &RcptTo<Cow<'_, str>>) -> Option<&'static str> {
    let notify = RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;
    [
        (to.flags & notify != 0, "NOTIFY"),
        (to.orcpt.is_some(), "ORCPT"),
        (
            to.rrvs != 0 || to.flags & (RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0,
            "RRVS",
        ),
        (to.flags & RCPT_CONNEG != 0, "CONNEG"),
    ]
    .into_iter()
    .find_map(|(present, name)| present.then_some(name))
}
