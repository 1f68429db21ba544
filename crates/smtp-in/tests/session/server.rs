//! The server on real TCP sockets: real clients, connection limits, shutdown.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mail_send::SmtpClient;
use mail_send::smtp::message::Parameters;
use mailfwd_smtp_in::{SmtpConfig, SmtpServer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::{Client, Mailfwd, addr, config, queued_id};
use crate::tls::test_tls;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A real [`SmtpServer`] on a free loopback port.
pub struct Running {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<io::Result<()>>,
}

impl Running {
    pub async fn start(mailfwd: &Mailfwd, config: SmtpConfig) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = SmtpServer::new(mailfwd.ingest.clone(), config);
        let server = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Running {
            address,
            stop: Some(stop),
            server,
        }
    }

    /// A raw client from `from` (an address in 127.0.0.0/8).
    pub async fn raw_client(&self, from: IpAddr) -> Client {
        Client::new(Box::new(self.connect_from(from).await.unwrap()), None)
    }

    /// A TCP connection from `from` (an address in 127.0.0.0/8).
    pub async fn connect_from(&self, from: IpAddr) -> io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        socket.connect(self.address).await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(TIMEOUT, self.server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

/// 127.0.0.`last`: every address in 127.0.0.0/8 is this machine.
pub fn local(last: u8) -> IpAddr {
    [127, 0, 0, last].into()
}

#[tokio::test]
async fn mail_send_delivers_byte_identical_bodies_over_tcp() {
    let mailfwd = Mailfwd::new().await;
    let running = Running::start(&mailfwd, config()).await;
    let mut smtp = SmtpClient::connect(running.address, TIMEOUT).await.unwrap();
    assert_eq!(smtp.read().await.unwrap().code, 220);
    smtp.ehlo("client.test").await.unwrap();
    // Lines that start with dots are stuffed by the client and unstuffed by us.
    let message = b"Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\nlast line";
    smtp.mail_from("alice@sender.test", &Parameters::new())
        .await
        .unwrap();
    smtp.rcpt_to("sales@acme.test", &Parameters::new())
        .await
        .unwrap();
    let reply = smtp.data(&message[..]).await.unwrap();
    assert_eq!(reply.code, 250);
    // BDAT carries the bytes as they are.
    let binary_ish = b"Subject: bdat\r\n\r\n\r\n.\r\n\x01\xff\r\n";
    smtp.mail_from("alice@sender.test", &Parameters::new())
        .await
        .unwrap();
    smtp.rcpt_to("info@acme.test", &Parameters::new())
        .await
        .unwrap();
    assert_eq!(smtp.bdat(&binary_ish[..]).await.unwrap().code, 250);
    smtp.quit().await.unwrap();

    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 2);
    // mail-send ends DATA with CRLF "." CRLF after the text, so the stored body gains
    // the CRLF that ends its last line.
    assert_eq!(stored[0].1, [&message[..], b"\r\n"].concat());
    assert_eq!(
        stored[0].0.email.envelope.recipients,
        [addr("sales@acme.test")]
    );
    assert_eq!(stored[1].1, binary_ish);
    let peer = stored[0].0.email.peer.clone().unwrap_or_default();
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    running.stop().await;
}

#[tokio::test]
async fn mail_send_starttls_over_tcp() {
    let tls = test_tls();
    let mailfwd = Mailfwd::new().await;
    let config = SmtpConfig {
        tls: Some(tls.server.clone()),
        ..config()
    };
    let running = Running::start(&mailfwd, config).await;
    let mut smtp = mail_send::SmtpClientBuilder::new_with_tls_connector(
        "localhost",
        running.address.port(),
        tls.connector.clone(),
    )
    .implicit_tls(false)
    .helo_host("client.test")
    .timeout(TIMEOUT)
    .connect()
    .await
    .unwrap();
    smtp.mail_from("alice@sender.test", &Parameters::new())
        .await
        .unwrap();
    smtp.rcpt_to("sales@acme.test", &Parameters::new())
        .await
        .unwrap();
    assert_eq!(
        smtp.data(&b"Subject: tls\r\n\r\nover tls"[..])
            .await
            .unwrap()
            .code,
        250
    );
    smtp.quit().await.unwrap();
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].0.email.tls);
    assert_eq!(stored[0].0.email.helo.as_deref(), Some("client.test"));
    assert_eq!(stored[0].1, b"Subject: tls\r\n\r\nover tls\r\n");
    running.stop().await;
}

#[tokio::test]
async fn connections_are_limited_per_peer_and_in_total() {
    let mailfwd = Mailfwd::new().await;
    let running = Running::start(
        &mailfwd,
        SmtpConfig {
            max_connections: 3,
            max_connections_per_peer: 2,
            ..config()
        },
    )
    .await;
    let mut first = running.raw_client(local(1)).await;
    first.expect_reply(220).await;
    let mut second = running.raw_client(local(1)).await;
    second.expect_reply(220).await;
    let mut third = running.raw_client(local(1)).await;
    let refused = third.reply().await;
    assert_eq!(
        refused.line(),
        "421 4.7.0 too many connections, try again later"
    );
    assert!(third.is_closed().await);

    let mut other = running.raw_client(local(2)).await;
    other.expect_reply(220).await;
    let mut over_total = running.raw_client(local(3)).await;
    assert_eq!(over_total.reply().await.code, 421);
    assert!(over_total.is_closed().await);

    // A place frees up when a session ends.
    first.cmd("QUIT", 221).await;
    assert!(first.is_closed().await);
    let mut again = None;
    for _ in 0..50 {
        let mut client = running.raw_client(local(1)).await;
        if client.reply().await.code == 220 {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = again.expect("a connection is accepted once one closed");
    again.cmd("QUIT", 221).await;
    second.cmd("QUIT", 221).await;
    other.cmd("QUIT", 221).await;
    running.stop().await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn shutdown_lets_a_message_in_progress_finish() {
    let mailfwd = Mailfwd::new().await;
    let running = Running::start(&mailfwd, config()).await;
    let mut idle = running.raw_client(local(1)).await;
    idle.expect_reply(220).await;
    idle.ehlo().await;
    let mut busy = running.raw_client(local(1)).await;
    busy.expect_reply(220).await;
    busy.envelope("a@b.test", &["sales@acme.test"]).await;
    busy.cmd("DATA", 354).await;
    busy.send("Subject: late\r\n\r\nfirst half\r\n").await;

    let Running {
        address,
        mut stop,
        server,
    } = running;
    if let Some(stop) = stop.take() {
        stop.send(()).unwrap();
    }
    assert_eq!(idle.reply().await.line(), "421 4.3.2 shutting down");
    assert!(idle.is_closed().await);
    // New connections are no longer accepted.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(address).await.is_err());

    busy.send("second half\r\n.\r\n").await;
    let id = queued_id(&busy.reply().await);
    assert_eq!(busy.reply().await.line(), "421 4.3.2 shutting down");
    assert!(busy.is_closed().await);
    tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();

    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.id.to_string(), id);
    assert_eq!(
        stored[0].1,
        b"Subject: late\r\n\r\nfirst half\r\nsecond half\r\n"
    );
}
