//! The property behind outbound smuggling protection: for any stored body, cut into
//! any chunks, the bytes DATA writes end the data exactly once, exactly at their end,
//! for every end-of-data rule a receiver is known to apply (the SMTP smuggling list),
//! and BDAT carries the same message.

use std::collections::VecDeque;

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::StoreError;
use proptest::prelude::*;
use proptest::sample::Index;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::tests::crlf_only;
use super::*;

const CR: &[u8] = b"\r";
const LF: &[u8] = b"\n";
const CRLF: &[u8] = b"\r\n";

/// How one receiver recognizes the end of the data: a `.` that follows one of the line
/// endings of a pair and is followed by the other. Every receiver also knows the
/// standard `CRLF . CRLF`; a sloppy one adds its own pairs. Of the endings that follow
/// the dot, a receiver takes the longest present (CRLF rather than CR).
struct Rule {
    name: &'static str,
    pairs: Vec<(&'static [u8], &'static [u8])>,
}

fn rules() -> Vec<Rule> {
    let standard = (CRLF, CRLF);
    let sloppy = |name, pair| Rule {
        name,
        pairs: vec![standard, pair],
    };
    let any_ending = [CR, LF, CRLF];
    let loosest = any_ending
        .iter()
        .flat_map(|&before| any_ending.iter().map(move |&after| (before, after)))
        .collect();
    vec![
        Rule {
            name: "CRLF.CRLF",
            pairs: vec![standard],
        },
        sloppy("LF.LF", (LF, LF)),
        sloppy("LF.CRLF", (LF, CRLF)),
        sloppy("CRLF.LF", (CRLF, LF)),
        sloppy("CR.CR", (CR, CR)),
        sloppy("CR.LF", (CR, LF)),
        sloppy("LF.CR", (LF, CR)),
        sloppy("CRLF.CR", (CRLF, CR)),
        sloppy("CR.CRLF", (CR, CRLF)),
        Rule {
            name: "a dot line ended by CR, LF or CRLF after any line ending",
            pairs: loosest,
        },
    ]
}

/// Where a receiver applying `rule` takes the data to end: the offset just past the
/// first end-of-data sequence in `data`, or `None` if the data never ends.
fn end_of_data(rule: &Rule, data: &[u8]) -> Option<usize> {
    // The data begins on a fresh line: the DATA command's CRLF precedes it.
    let seen: Vec<u8> = [CRLF, data].concat();
    (0..seen.len())
        .filter(|&dot| seen[dot] == b'.')
        .find_map(|dot| {
            let (before, after) = (&seen[..dot], &seen[dot + 1..]);
            rule.pairs
                .iter()
                .filter(|(ending, next)| before.ends_with(ending) && after.starts_with(next))
                .map(|(_, next)| dot + 1 + next.len())
                .max()
        })
        .map(|end| end - CRLF.len())
}

/// The message a standard receiver keeps: the CRLF lines before the lone `.` line,
/// each with one leading dot removed.
fn unstuff(data: &[u8]) -> Vec<u8> {
    let mut message = Vec::new();
    for line in data.split_inclusive(|&byte| byte == b'\n') {
        if line == b".\r\n" {
            break;
        }
        message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    message
}

/// The payloads of a run of `BDAT n [LAST]` commands, joined.
fn unframe_bdat(mut wire: &[u8]) -> Vec<u8> {
    let mut message = Vec::new();
    while !wire.is_empty() {
        let header_end = wire.windows(2).position(|w| w == CRLF).expect("a header");
        let header = std::str::from_utf8(&wire[..header_end]).expect("an ASCII header");
        let size: usize = header
            .split(' ')
            .nth(1)
            .expect("a size")
            .parse()
            .expect("n");
        let start = header_end + CRLF.len();
        message.extend_from_slice(&wire[start..start + size]);
        wire = &wire[start + size..];
    }
    message
}

struct Chunks(VecDeque<Bytes>);

#[async_trait]
impl BodyReader for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.pop_front())
    }
}

/// What smtp-out writes after the DATA command (`bdat: false`) or for the BDAT
/// commands (`bdat: true`), for `body` cut at `cuts`.
fn written(body: &[u8], cuts: &[usize], bdat: bool) -> Vec<u8> {
    let mut cuts = cuts.to_vec();
    cuts.push(body.len());
    cuts.sort_unstable();
    let mut chunks = VecDeque::new();
    let mut from = 0;
    for cut in cuts {
        chunks.push_back(Bytes::copy_from_slice(&body[from..cut]));
        from = cut;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, mut server) = duplex(1 << 20);
        let mut client = Client::new(client);
        server.write_all(b"250 2.0.0 queued\r\n").await.ok();
        let mut reader = Chunks(chunks);
        let timeouts = SmtpTimeouts::default();
        let reply = if bdat {
            send_bdat(&mut client, &mut reader, &timeouts).await
        } else {
            send_data(&mut client, &mut reader, &timeouts).await
        };
        assert!(matches!(reply, Ok(ref r) if r.code == 250), "{reply:?}");
        drop(client);
        let mut wire = Vec::new();
        server.read_to_end(&mut wire).await.ok();
        wire
    })
}

/// Bodies made of what smuggling is made of: CR, LF, dots, NUL, and short text.
fn stored_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => Just(CR.to_vec()),
        4 => Just(LF.to_vec()),
        4 => Just(b".".to_vec()),
        2 => Just(CRLF.to_vec()),
        1 => Just(b"\0".to_vec()),
        3 => prop::collection::vec(b'a'..=b'z', 0..6),
        1 => Just(b"MAIL FROM:<ceo@bank.test>".to_vec()),
        1 => any::<u8>().prop_map(|byte| vec![byte]),
    ];
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

fn body_and_cuts() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (stored_body(), prop::collection::vec(any::<Index>(), 0..8)).prop_map(|(body, cuts)| {
        let cuts = cuts.iter().map(|cut| cut.index(body.len() + 1)).collect();
        (body, cuts)
    })
}

/// The stored body as every receiver should get it: CRLF-only, ending with CRLF.
fn normalized(body: &[u8]) -> Vec<u8> {
    let mut message = crlf_only(body);
    if !message.is_empty() && !message.ends_with(CRLF) {
        message.extend_from_slice(CRLF);
    }
    message
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn data_ends_once_at_its_end_under_every_rule((body, cuts) in body_and_cuts()) {
        let data = written(&body, &cuts, false);
        for rule in rules() {
            prop_assert_eq!(
                end_of_data(&rule, &data),
                Some(data.len()),
                "rule {}: {:?} went out as {:?}",
                rule.name,
                body,
                data
            );
        }
    }

    #[test]
    fn data_is_crlf_only_and_unstuffs_to_the_normalized_body(
        (body, cuts) in body_and_cuts()
    ) {
        let data = written(&body, &cuts, false);
        for (at, &byte) in data.iter().enumerate() {
            let crlf = match byte {
                b'\r' => data.get(at + 1) == Some(&b'\n'),
                b'\n' => at > 0 && data[at - 1] == b'\r',
                _ => true,
            };
            prop_assert!(crlf, "a bare line ending at {} of {:?}", at, data);
        }
        prop_assert_eq!(unstuff(&data), normalized(&body));
    }

    #[test]
    fn bdat_sends_what_data_delivers((body, cuts) in body_and_cuts()) {
        let bdat = unframe_bdat(&written(&body, &cuts, true));
        prop_assert_eq!(&bdat, &normalized(&body));
        prop_assert_eq!(bdat, unstuff(&written(&body, &cuts, false)));
    }
}

#[test]
fn the_rules_catch_what_they_are_meant_to() {
    let rules = rules();
    let by_name = |name| rules.iter().find(|rule| rule.name == name).expect("a rule");
    let smuggled = b"hello\n.\nMAIL FROM:<ceo@bank.test>\r\n.\r\n";
    assert_eq!(end_of_data(by_name("LF.LF"), smuggled), Some(8));
    assert_eq!(
        end_of_data(by_name("CRLF.CRLF"), smuggled),
        Some(smuggled.len())
    );
    assert_eq!(end_of_data(by_name("CR.CR"), b"a\r.\rb\r\n.\r\n"), Some(4));
    assert_eq!(end_of_data(by_name("CRLF.CR"), b".\rb\r\n.\r\n"), Some(2));
    assert_eq!(end_of_data(by_name("CRLF.CRLF"), b"..\r\n"), None);
    assert_eq!(end_of_data(&rules[rules.len() - 1], b"a\r.\r\n"), Some(5));
}
