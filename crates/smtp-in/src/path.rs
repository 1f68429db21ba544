//! From the path text smtp-proto hands over to an [`EmailAddress`], and the source route
//! that only SMTP syntax can express (the other relay checks are the domain's).

use mailfwd_domain::{AddressError, EmailAddress, Srs};

/// The mailbox in a path. smtp-proto removes the quotes of a quoted local part
/// (`"john doe"@x` arrives as `john doe@x`), so when the text does not parse as it is,
/// the local part is quoted again and parsed once more. [`EmailAddress::parse`] is
/// the only judge of validity either way.
pub(crate) fn mailbox(path: &str) -> Result<EmailAddress, AddressError> {
    // An SRS address (a sender another forwarder rewrote, a bounce to one of ours) may
    // have a local part longer than 64 octets; mail with one must still get through.
    if let Err(AddressError::LocalPartTooLong(_)) = EmailAddress::parse(path)
        && Srs::is_tagged(path)
    {
        return EmailAddress::parse_rewritten(path);
    }
    EmailAddress::parse(path).or_else(|first| {
        let Some((local, domain)) = path.rsplit_once('@') else {
            return Err(first);
        };
        let mut quoted = String::with_capacity(path.len() + 4);
        quoted.push('"');
        for c in local.chars() {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push_str("\"@");
        quoted.push_str(domain);
        EmailAddress::parse(&quoted).map_err(|_| first)
    })
}

/// Whether a `RCPT` line names `<postmaster>` without a domain (any case), which RFC
/// 5321 §4.5.1 requires accepting. smtp-proto hands it over as an empty path, the same
/// as `<>`, so the raw line is looked at.
pub(crate) fn is_bare_postmaster(line: &[u8]) -> bool {
    let Some(open) = line.iter().position(|&byte| byte == b'<') else {
        return false;
    };
    let rest = &line[open + 1..];
    rest.iter()
        .position(|&byte| byte == b'>')
        .is_some_and(|close| {
            rest[..close]
                .trim_ascii()
                .eq_ignore_ascii_case(b"postmaster")
        })
}

/// Whether a `RCPT` line has a source route (`<@a,@b:user@d>`). smtp-proto drops the
/// route and keeps `user@d`, so the raw line is looked at: a route asks us to relay.
pub(crate) fn has_source_route(line: &[u8]) -> bool {
    let Some(open) = line.iter().position(|&byte| byte == b'<') else {
        return false;
    };
    line[open + 1..]
        .iter()
        .find(|&&byte| byte != b' ')
        .is_some_and(|&byte| byte == b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_local_parts_survive_smtp_proto_unquoting() {
        let address = mailbox("john doe@x.test").expect("valid once quoted");
        assert_eq!(address.local_part(), "\"john doe\"");
        assert_eq!(
            mailbox("plain@x.test").expect("valid").to_string(),
            "plain@x.test"
        );
        assert!(mailbox("no-at").is_err());
        assert!(mailbox("a@bad_domain").is_err());
    }

    #[test]
    fn a_bare_postmaster_is_recognised_in_any_case() {
        assert!(is_bare_postmaster(b"RCPT TO:<postmaster>"));
        assert!(is_bare_postmaster(b"RCPT TO:<PostMaster> "));
        assert!(!is_bare_postmaster(b"RCPT TO:<>"));
        assert!(!is_bare_postmaster(b"RCPT TO:<postmaster@x.test>"));
        assert!(!is_bare_postmaster(b"RCPT TO:<postmasters>"));
    }

    #[test]
    fn source_routes_are_recognised() {
        assert!(has_source_route(b"RCPT TO:<@a.test,@b.test:u@d.test>\r\n"));
        assert!(has_source_route(b"RCPT TO:< @a.test:u@d.test>\r\n"));
        assert!(!has_source_route(b"RCPT TO:<u@d.test>\r\n"));
    }
}
