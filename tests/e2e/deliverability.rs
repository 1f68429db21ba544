//! Forwarded mail as the destination's own checkers judge it (issue 12), with stub DNS
//! answers and no network: DKIM signatures still verify after mailfwd forwarded the
//! message (Python dkimpy: `python/dkim_check.py`), and SRS turns the destination's SPF
//! result for the envelope sender from `fail` into `pass` (Python pyspf:
//! `python/spf_check.py`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mailfwd_testkit::Client;
use mailfwd_testkit::client::{dot_stuffed, queued_id};
use mailfwd_testkit::sink::{Options, Received, Sink};
use serde_json::{Value, json};

use crate::harness::{Server, ensure_python_modules};

/// What mailfwd calls itself in these tests (it goes into the `Received:` header).
const HOSTNAME: &str = "mx.mailfwd.test";

/// dkimpy and pyspf from PyPI (both use dnspython), installed if missing.
fn ensure_dkimpy_and_pyspf() {
    ensure_python_modules(&["dkim", "spf", "dns"], &["dkimpy", "pyspf", "dnspython"]);
}

/// Runs `tests/e2e/python/SCRIPT` with `args`; it must succeed. Its standard output.
fn python<S: AsRef<OsStr>>(script: &str, args: impl IntoIterator<Item = S>) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/e2e/python")
        .join(script);
    let output = Command::new("python3")
        .arg(path)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// One message a sender's domain signs and mailfwd forwards.
struct Case {
    /// Its name, in file names and failure messages.
    name: &'static str,
    /// The address at mailfwd it is sent to.
    alias: &'static str,
    /// Where mailfwd forwards it.
    destination: &'static str,
    /// The MAIL command it is sent with.
    mail_from: &'static str,
    /// The message as written, before it is signed.
    message: Vec<u8>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "plain",
            alias: "plain@acme.test",
            destination: "plain@dest.test",
            mail_from: "MAIL FROM:<alice@example.org>",
            message: b"From: Alice Example <alice@example.org>\r\n\
                To: plain@acme.test\r\n\
                Subject: a plain ASCII message,  with a header\r\n  folded onto a second line\r\n\
                Date: Sun, 22 Nov 2026 05:10:00 +0000\r\n\
                Message-ID: <plain@example.org>\r\n\
                \r\n\
                Hello,\r\n\
                .a line that starts with a dot (doubled on the wire)\r\n\
                trailing white space \t \r\n\
                \r\n\
                -- \r\n\
                Alice\r\n"
                .to_vec(),
        },
        Case {
            name: "8bit",
            alias: "eightbit@acme.test",
            destination: "eightbit@dest.test",
            mail_from: "MAIL FROM:<alice@example.org> BODY=8BITMIME",
            message: "From: Alice Example <alice@example.org>\r\n\
                To: eightbit@acme.test\r\n\
                Subject: an 8-bit body\r\n\
                Date: Sun, 22 Nov 2026 05:10:00 +0000\r\n\
                Message-ID: <8bit@example.org>\r\n\
                MIME-Version: 1.0\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\
                Content-Transfer-Encoding: 8bit\r\n\
                \r\n\
                Gr\u{fc}\u{df}e aus K\u{f6}ln: \u{bd} kg \u{c4}pfel f\u{fc}r 3 \u{20ac}.\r\n\
                \u{65e5}\u{672c}\u{8a9e}\u{306e}\u{30c6}\u{30ad}\u{30b9}\u{30c8}\r\n\
                \u{2713} done\r\n"
                .as_bytes()
                .to_vec(),
        },
        Case {
            name: "smtputf8",
            alias: "\u{e9}quipe@acme.test",
            destination: "zo\u{eb}@dest.test",
            mail_from: "MAIL FROM:<jos\u{e9}@example.org> BODY=8BITMIME SMTPUTF8",
            message: "From: Jos\u{e9} M\u{fc}ller <jos\u{e9}@example.org>\r\n\
                To: \u{c9}quipe <\u{e9}quipe@acme.test>\r\n\
                Subject: Caf\u{e9} cr\u{e8}me, na\u{ef}ve r\u{e9}sum\u{e9} \u{2014} \u{65e5}\u{672c}\r\n\
                Date: Sun, 22 Nov 2026 05:10:00 +0000\r\n\
                Message-ID: <smtputf8@example.org>\r\n\
                MIME-Version: 1.0\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\
                Content-Transfer-Encoding: 8bit\r\n\
                \r\n\
                Bonjour l'\u{e9}quipe,\r\n\
                \u{e0} bient\u{f4}t.\r\n"
                .as_bytes()
                .to_vec(),
        },
        Case {
            name: "25mb",
            alias: "big@acme.test",
            destination: "big@dest.test",
            mail_from: "MAIL FROM:<alice@example.org>",
            message: large_message(25 * 1024 * 1024),
        },
    ]
}

/// A multipart message of about `size` octets: a text part with lines of exactly 998
/// octets (the most RFC 5322 allows) and lines that start with a dot, then an
/// attachment of pseudo-random base64 in 76-octet lines, as mail clients write it.
fn large_message(size: usize) -> Vec<u8> {
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut message = b"From: Alice Example <alice@example.org>\r\n\
        To: big@acme.test\r\n\
        Subject: a large attachment\r\n\
        Date: Sun, 22 Nov 2026 05:10:00 +0000\r\n\
        Message-ID: <25mb@example.org>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
        \r\n\
        --b1\r\n\
        Content-Type: text/plain; charset=us-ascii\r\n\
        \r\n\
        The attachment follows.\r\n"
        .to_vec();
    message.reserve(size + 1024);
    for n in 0..4 {
        let line: Vec<u8> = (0..998u32)
            .map(|i| b"abcdefghij"[(i % 10) as usize])
            .collect();
        message.extend_from_slice(&line);
        message.extend_from_slice(format!("\r\n..{n} a line that starts with dots\r\n").as_bytes());
    }
    message.extend_from_slice(
        b"--b1\r\n\
        Content-Type: application/octet-stream; name=\"big.bin\"\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n",
    );
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    while message.len() < size {
        for _ in 0..76 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            message.push(BASE64[(state >> 58) as usize]);
        }
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(b"--b1--\r\n");
    message
}

/// Sends `message` to `case.alias` with the case's MAIL command; the id it was queued as.
async fn send(server: &Server, case: &Case, message: &[u8]) -> String {
    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    client.cmd(case.mail_from, 250).await;
    client.cmd(&format!("RCPT TO:<{}>", case.alias), 250).await;
    let done = client.data(&dot_stuffed(message)).await;
    assert_eq!(done.code, 250, "{}: {done:?}", case.name);
    client.cmd("QUIT", 221).await;
    queued_id(&done)
}

/// `message` with one byte of its body changed (an ASCII letter or digit near the
/// middle of the body, to another).
fn tampered(message: &[u8]) -> Vec<u8> {
    let body = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header section")
        + 4;
    let start = body + (message.len() - body) / 2;
    let at = (start..message.len())
        .chain(body..start)
        .find(|&i| message[i].is_ascii_alphanumeric())
        .expect("a letter in the body");
    let mut copy = message.to_vec();
    copy[at] = if copy[at] == b'x' { b'y' } else { b'x' };
    copy
}

/// Issue 12: with dkimpy at the destination, DKIM-signed messages still verify after
/// forwarding: plain, 8-bit, SMTPUTF8 and 25 MB, each signed relaxed/relaxed and
/// simple/simple (the strictest: any change to a signed header or the body breaks it).
/// A copy with one body byte changed fails, so the check is real.
#[tokio::test]
async fn dkim_signatures_still_verify_after_forwarding() {
    ensure_dkimpy_and_pyspf();
    let work = tempfile::tempdir().unwrap();
    let file = |name: &str, kind: &str| work.path().join(format!("{name}.{kind}.eml"));
    python(
        "dkim_check.py",
        [OsStr::new("keygen"), work.path().as_os_str()],
    );
    let cases = cases();
    let mut sign: Vec<PathBuf> = vec!["sign".into(), work.path().into()];
    for case in &cases {
        std::fs::write(file(case.name, "unsigned"), &case.message).unwrap();
        sign.extend([file(case.name, "unsigned"), file(case.name, "signed")]);
    }
    python("dkim_check.py", &sign);

    let sink = Sink::start(Options {
        smtputf8: true,
        // The 25 MB message is kept whole, so dkimpy checks the very bytes delivered.
        keep_body: 40_000_000,
        ..Options::destination()
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let relay = sink.addr.to_string();
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_HOSTNAME", HOSTNAME),
            // Well above the 25 MB message, whatever the default.
            ("MAILFWD_MAX_MESSAGE_SIZE", "40000000"),
        ],
    );
    for case in &cases {
        server
            .create_rule(case.alias, json!(case.destination))
            .await;
    }

    let mut sent = Vec::new();
    for case in &cases {
        let signed = std::fs::read(file(case.name, "signed")).unwrap();
        send(&server, case, &signed).await;
        sent.push(case);
    }
    sink.wait_for_messages(cases.len(), Duration::from_secs(60))
        .await;

    let messages = sink.messages();
    let mut verify: Vec<PathBuf> = vec!["verify".into(), work.path().into()];
    for case in &sent {
        let message = messages
            .iter()
            .find(|m| Received::from(*m).recipients == [case.destination])
            .unwrap_or_else(|| panic!("{}: nothing arrived for {}", case.name, case.destination));
        let delivered = &message.body;
        assert_eq!(
            delivered.len() as u64,
            message.len,
            "{}: kept whole",
            case.name
        );
        std::fs::write(file(case.name, "delivered"), delivered).unwrap();
        std::fs::write(file(case.name, "tampered"), tampered(delivered)).unwrap();
        verify.extend([file(case.name, "delivered"), file(case.name, "tampered")]);
    }
    let results: Value = serde_json::from_slice(&python("dkim_check.py", &verify)).unwrap();

    for case in &cases {
        let delivered = &results[file(case.name, "delivered").to_str().unwrap()];
        let canonicalizations: Vec<&str> = delivered
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["c"].as_str().unwrap())
            .collect();
        assert_eq!(
            canonicalizations,
            ["simple/simple", "relaxed/relaxed"],
            "{}: {delivered}",
            case.name
        );
        assert!(
            delivered
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["pass"] == true),
            "{}: a DKIM signature no longer verifies after forwarding: {delivered}",
            case.name
        );
        let tampered = &results[file(case.name, "tampered").to_str().unwrap()];
        let tampered_signatures = tampered.as_array().unwrap();
        assert!(
            tampered_signatures.len() == 2
                && tampered_signatures.iter().all(|s| s["pass"] == false),
            "{}: a changed body byte went unnoticed: {tampered}",
            case.name
        );
    }
    server.terminate();
}

/// Issue 12: the SPF effect of SRS, shown with pyspf. The sender's domain authorizes
/// only its own server (192.0.2.10); the forwarder's domain `fwd.test` authorizes the
/// forwarder (198.51.100.25). Seen from the forwarder's address, the original envelope
/// sender fails SPF at the destination; the envelope sender mailfwd actually used (as
/// the sink recorded it) passes.
#[tokio::test]
async fn srs_turns_the_destinations_spf_fail_into_a_pass() {
    ensure_dkimpy_and_pyspf();
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let relay = sink.addr.to_string();
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_HOSTNAME", "mx.fwd.test"),
            ("MAILFWD_SRS_DOMAIN", "fwd.test"),
            ("MAILFWD_SRS_SECRET", "a-secret-for-the-test,the-one-before"),
        ],
    );
    server
        .create_rule("sales@acme.test", json!("bob@dest.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    client
        .send_mail(
            "alice@sender.test",
            "sales@acme.test",
            b"From: Alice <alice@sender.test>\r\nTo: sales@acme.test\r\n\
              Subject: SPF after forwarding\r\n\r\nHello Bob\r\n",
        )
        .await;
    let received = sink.wait_for_messages(1, Duration::from_secs(30)).await;
    let rewritten = received[0].sender.clone();
    assert!(
        rewritten.starts_with("SRS0=")
            && rewritten.ends_with("@fwd.test")
            && rewritten.contains("=sender.test=alice@"),
        "the envelope sender at the destination: {rewritten}"
    );

    let records = json!({
        "sender.test": "v=spf1 ip4:192.0.2.10 -all",
        "fwd.test": "v=spf1 ip4:198.51.100.25 -all",
    });
    let answer: Value = serde_json::from_slice(&python(
        "spf_check.py",
        [
            records.to_string(),
            "mx.fwd.test".to_owned(),
            "192.0.2.10:alice@sender.test".to_owned(),
            "198.51.100.25:alice@sender.test".to_owned(),
            format!("198.51.100.25:{rewritten}"),
        ],
    ))
    .unwrap();
    let results: Vec<&str> = answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| check["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        [
            "pass", // the sender's own server: the stub DNS is what pyspf consults
            "fail", // the original envelope, forwarded as it was: refused
            "pass", // the rewritten envelope, from the same forwarder
        ],
        "{answer}"
    );
    server.terminate();
}
