//! Transactions for several recipients against a scripted server: each refused RCPT TO
//! is that recipient's own outcome, what ends the transaction applies to the others.

use tokio::io::AsyncWriteExt;

use super::tests::{BODY, PIPELINING, permanent, read_once, read_until, run_to, transient};
use super::*;
use crate::reply::Capabilities;

const THREE: [&str; 3] = ["b@dest.test", "c@dest.test", "d@dest.test"];

fn delivered(text: &str) -> DeliveryOutcome {
    DeliveryOutcome::Delivered(text.to_owned())
}

#[tokio::test]
async fn one_pipelined_group_carries_every_rcpt_and_a_refusal_stays_with_its_recipient() {
    let (end, read, _) = run_to(&THREE, PIPELINING, |mut server| async move {
        assert_eq!(
            read_once(&mut server).await,
            b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@dest.test>\r\nRCPT TO:<c@dest.test>\r\n\
              RCPT TO:<d@dest.test>\r\nDATA\r\n"
        );
        server
            .write_all(b"250 Ok\r\n250 Ok\r\n550 5.1.1 no such user\r\n250 Ok\r\n354 go\r\n")
            .await
            .ok();
        let data = read_until(&mut server, b"\r\n.\r\n").await;
        assert_eq!(data, [BODY, b".\r\n"].concat());
        server.write_all(b"250 2.0.0 queued\r\n").await.ok();
        server
    })
    .await;
    assert!(read);
    assert_eq!(end.after, After::Ready);
    assert_eq!(
        end.outcomes(3),
        [
            delivered("250 2.0.0 queued"),
            permanent("550 5.1.1 no such user"),
            delivered("250 2.0.0 queued"),
        ]
    );
}

#[tokio::test]
async fn without_pipelining_a_refused_rcpt_does_not_stop_the_others() {
    let (end, read, _) = run_to(
        &THREE[..2],
        Capabilities::default(),
        |mut server| async move {
            for (command, reply) in [
                (&b"MAIL FROM:<a@sender.test>\r\n"[..], &b"250 Ok\r\n"[..]),
                (b"RCPT TO:<b@dest.test>\r\n", b"450 4.2.1 mailbox busy\r\n"),
                (b"RCPT TO:<c@dest.test>\r\n", b"250 Ok\r\n"),
                (b"DATA\r\n", b"354 go ahead\r\n"),
                (
                    b"Subject: hi\r\n\r\nhello\r\n.\r\n",
                    b"250 2.0.0 queued\r\n",
                ),
            ] {
                assert_eq!(read_until(&mut server, b"\r\n").await, command);
                server.write_all(reply).await.ok();
            }
            server
        },
    )
    .await;
    assert!(read);
    assert_eq!(
        end.outcomes(2),
        [
            transient("450 4.2.1 mailbox busy"),
            delivered("250 2.0.0 queued")
        ]
    );
}

#[tokio::test]
async fn with_every_rcpt_refused_each_keeps_its_reply_and_no_data_goes() {
    for caps in [PIPELINING, Capabilities::default()] {
        let (end, read, rest) = run_to(&THREE[..2], caps, |mut server| async move {
            let replies: &[&[u8]] = &[
                b"250 Ok\r\n",
                b"550 5.1.1 no such user\r\n",
                b"452 4.2.2 over quota\r\n",
                b"554 5.5.1 no valid recipients\r\n",
            ];
            if caps.pipelining {
                read_once(&mut server).await;
                server.write_all(&replies.concat()).await.ok();
            } else {
                for reply in &replies[..3] {
                    read_until(&mut server, b"\r\n").await;
                    server.write_all(reply).await.ok();
                }
            }
            server
        })
        .await;
        assert!(!read, "the body is never read");
        assert!(rest.is_empty(), "no DATA, no RSET yet: {rest:?}");
        assert_eq!(end.after, After::Reset);
        assert_eq!(
            end.outcomes(2),
            [
                permanent("550 5.1.1 no such user"),
                transient("452 4.2.2 over quota")
            ],
            "{caps:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_data_applies_to_the_accepted_recipients_only() {
    let (end, read, _) = run_to(&THREE[..2], PIPELINING, |mut server| async move {
        read_once(&mut server).await;
        server
            .write_all(b"250 Ok\r\n250 Ok\r\n550 5.1.1 no such user\r\n451 4.3.0 not now\r\n")
            .await
            .ok();
        server
    })
    .await;
    assert!(!read);
    assert_eq!(end.after, After::Reset);
    assert_eq!(
        end.outcomes(2),
        [
            transient("451 4.3.0 not now"),
            permanent("550 5.1.1 no such user")
        ]
    );
}

#[tokio::test]
async fn a_421_to_a_rcpt_ends_it_for_every_recipient_not_refused_before() {
    let (end, read, _) = run_to(&THREE, PIPELINING, |mut server| async move {
        read_once(&mut server).await;
        server
            .write_all(b"250 Ok\r\n550 5.1.1 no such user\r\n421 4.3.2 shutting down\r\n")
            .await
            .ok();
        server.shutdown().await.ok();
        server
    })
    .await;
    assert!(!read);
    assert_eq!((end.after, end.retryable), (After::Close, false));
    assert_eq!(
        end.outcomes(3),
        [
            permanent("550 5.1.1 no such user"),
            transient("421 4.3.2 shutting down"),
            transient("421 4.3.2 shutting down"),
        ]
    );
}

#[tokio::test]
async fn a_non_ascii_local_part_of_any_recipient_needs_smtputf8() {
    let (end, read, _) = run_to(
        &["b@dest.test", "jürgen@dest.test"],
        PIPELINING,
        |server| async move { server },
    )
    .await;
    assert!(!read);
    let outcomes = end.outcomes(2);
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes.iter().all(
            |outcome| matches!(outcome, DeliveryOutcome::Permanent(text) if text.starts_with("5.6.7"))
        ),
        "the ASCII recipient cannot go without the other: {outcomes:?}"
    );
}
