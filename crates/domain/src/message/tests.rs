use proptest::prelude::*;

use super::*;

fn policy(bare_line_endings: BareLineEndings) -> MessagePolicy {
    MessagePolicy {
        bare_line_endings,
        ..MessagePolicy::default()
    }
}

/// Runs `message` through a filter in pieces cut at `cuts`; the stored bytes or the error.
fn run(policy: &MessagePolicy, message: &[u8], cuts: &[usize]) -> Result<Vec<u8>, MessageError> {
    let mut filter = MessageFilter::new(policy);
    let mut stored = Vec::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|&cut| cut.min(message.len())).collect();
    ends.sort_unstable();
    ends.push(message.len());
    for end in ends {
        stored.extend_from_slice(&filter.filter(&message[start..end])?);
        start = end;
    }
    filter.finish()?;
    assert_eq!(filter.size(), stored.len() as u64);
    Ok(stored)
}

fn check(policy: &MessagePolicy, message: &[u8]) -> Result<Vec<u8>, MessageError> {
    run(policy, message, &[])
}

#[test]
fn crlf_messages_pass_unchanged() {
    let message = b"Subject: hi\r\n\r\nbody\r\n";
    for mode in [BareLineEndings::Reject, BareLineEndings::Normalize] {
        assert_eq!(check(&policy(mode), message), Ok(message.to_vec()));
    }
}

#[test]
fn bare_line_endings_and_nul_are_refused_where_they_are() {
    let reject = policy(BareLineEndings::Reject);
    assert_eq!(check(&reject, b"ab\ncd"), Err(MessageError::BareLf(2)));
    assert_eq!(check(&reject, b"ab\rcd"), Err(MessageError::BareCr(2)));
    assert_eq!(check(&reject, b"ab\r\nc\r"), Err(MessageError::BareCr(5)));
    assert_eq!(check(&reject, b"ab\0"), Err(MessageError::Nul(2)));
    let message = MessageError::BareLf(1234).to_string();
    assert_eq!(
        message,
        "the message contains a bare LF at byte 1234; lines must end with CRLF"
    );
}

#[test]
fn normalize_turns_bare_lf_into_crlf_but_still_refuses_bare_cr() {
    let normalize = policy(BareLineEndings::Normalize);
    assert_eq!(
        run(&normalize, b"Subject: x\n\nline\nend\r\n", &[3, 11, 12]),
        Ok(b"Subject: x\r\n\r\nline\r\nend\r\n".to_vec())
    );
    assert_eq!(check(&normalize, b"a\rb"), Err(MessageError::BareCr(1)));
    assert_eq!(check(&normalize, b"a\0"), Err(MessageError::Nul(1)));
}

#[test]
fn received_headers_are_counted_in_both_forms_and_only_in_the_header_section() {
    let limits = MessagePolicy {
        max_received_headers: 2,
        ..MessagePolicy::default()
    };
    let two = b"Received: a\r\n by b\r\nRECEIVED : c\r\nSubject: x\r\n\r\nReceived: d\r\n";
    assert!(check(&limits, two).is_ok());
    let three = b"Received: a\r\nReceived\t: b\r\nreceived:c\r\n\r\n";
    assert_eq!(check(&limits, three), Err(MessageError::MailLoop(2)));
    let not_headers = b"Received-SPF: pass\r\nX-Received: a\r\nReceivedx: b\r\n\r\n";
    assert!(check(&limits, not_headers).is_ok());

    let default = MessagePolicy::default();
    assert!(check(&default, &b"Received : x\r\n".repeat(50)).is_ok());
    assert_eq!(
        check(&default, &b"Received : x\r\n".repeat(51)),
        Err(MessageError::MailLoop(50))
    );
}

#[test]
fn a_line_that_is_no_header_field_ends_the_header_section() {
    let limits = MessagePolicy {
        max_received_headers: 0,
        ..MessagePolicy::default()
    };
    assert!(check(&limits, b"From someone\r\nReceived: x\r\n").is_ok());
    assert!(check(&limits, b" folded first\r\nReceived: x\r\n").is_ok());
    assert!(check(&limits, b"Subject: x\r\n\r\nReceived: x\r\n").is_ok());
    assert_eq!(
        check(&limits, b"Subject: x\r\n more\r\nReceived: x\r\n"),
        Err(MessageError::MailLoop(0))
    );
}

#[test]
fn header_fields_and_the_header_section_have_size_limits() {
    // Long lines, to reach the header limits without folding; lines have their own.
    let default = MessagePolicy {
        max_line_length: usize::MAX,
        max_header_section_size: 1024 * 1024,
        ..MessagePolicy::default()
    };
    let field = |size: usize| {
        let mut field = b"X-Big: ".to_vec();
        field.resize(size - 2, b'a');
        field.extend_from_slice(b"\r\n");
        field
    };
    assert!(check(&default, &field(102_400)).is_ok());
    assert_eq!(
        check(&default, &field(102_401)),
        Err(MessageError::HeaderFieldTooLarge(102_400))
    );
    // Continuation lines belong to their field.
    let folded = [b"X-Big: a\r\n".to_vec(), b" folded\r\n".repeat(12_000)].concat();
    assert_eq!(
        check(&default, &folded),
        Err(MessageError::HeaderFieldTooLarge(102_400))
    );
    // Many fields, each small, make a section too large.
    let section = field(60_000).repeat(18);
    assert_eq!(
        check(&default, &section),
        Err(MessageError::HeaderSectionTooLarge(1024 * 1024))
    );
    // The same bytes in the body are fine.
    let body = [b"Subject: x\r\n\r\n".to_vec(), section].concat();
    assert!(check(&default, &body).is_ok());
}

#[test]
fn lines_longer_than_998_octets_are_refused_naming_the_line() {
    let default = MessagePolicy::default();
    let line = |length: usize| [vec![b'a'; length], b"\r\n".to_vec()].concat();
    let message =
        |body_line: Vec<u8>| [b"Subject: x\r\n\r\nfirst\r\n".to_vec(), body_line].concat();
    assert!(check(&default, &message(line(998))).is_ok());
    assert_eq!(
        check(&default, &message(line(999))),
        Err(MessageError::LineTooLong {
            limit: 998,
            line: 4
        })
    );
    // However the line is cut into chunks, and in the header section too.
    assert_eq!(
        run(&default, &message(line(5000)), &[20, 500, 1017, 1200]),
        Err(MessageError::LineTooLong {
            limit: 998,
            line: 4
        })
    );
    let header = [b"X-Long: ".to_vec(), line(991)].concat();
    assert_eq!(
        check(&default, &header),
        Err(MessageError::LineTooLong {
            limit: 998,
            line: 1
        })
    );
    // A bare LF made CRLF ends a line too.
    let normalize = policy(BareLineEndings::Normalize);
    let lf_lines = [
        b"S: x\n\n".to_vec(),
        vec![b'a'; 998],
        b"\n".to_vec(),
        vec![b'b'; 998],
        b"\n".to_vec(),
    ]
    .concat();
    assert!(check(&normalize, &lf_lines).is_ok());
    assert_eq!(
        MessageError::LineTooLong {
            limit: 998,
            line: 4
        }
        .to_string(),
        "line 4 of the message is longer than 998 octets (RFC 5322 section 2.1.1)"
    );
}

#[test]
fn the_size_limit_counts_stored_octets() {
    let small = MessagePolicy {
        max_size: 4,
        bare_line_endings: BareLineEndings::Normalize,
        ..MessagePolicy::default()
    };
    assert!(check(&small, b"ab\r\n").is_ok());
    assert_eq!(check(&small, b"abc\n"), Err(MessageError::TooLarge(4)));
}

/// Messages made of the octets that matter to the policy, with some header-like text.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"Received: x\r\n".to_vec()),
        Just(b"Received :".to_vec()),
        Just(b" ".to_vec()),
        Just(b"Subject: x".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn cutting_the_input_anywhere_gives_the_same_verdict_and_bytes(
        message in message(),
        cuts in proptest::collection::vec(0usize..400, 0..6),
        normalize in any::<bool>(),
        max_size in 1u64..300,
        max_field in 1usize..40,
        max_line_length in 1usize..60,
    ) {
        let mode = if normalize { BareLineEndings::Normalize } else { BareLineEndings::Reject };
        let policy = MessagePolicy {
            max_size,
            max_received_headers: 2,
            max_header_field_size: max_field,
            max_header_section_size: 100,
            max_line_length,
            bare_line_endings: mode,
        };
        let whole = run(&policy, &message, &[]);
        prop_assert_eq!(run(&policy, &message, &cuts), whole.clone());
        if let Ok(stored) = whole {
            // What is stored is CRLF-only and NUL-free.
            for (index, &byte) in stored.iter().enumerate() {
                prop_assert_ne!(byte, 0);
                if byte == b'\n' {
                    prop_assert_eq!(index.checked_sub(1).map(|i| stored[i]), Some(b'\r'));
                }
                if byte == b'\r' {
                    prop_assert_eq!(stored.get(index + 1), Some(&b'\n'));
                }
            }
        }
    }
}
