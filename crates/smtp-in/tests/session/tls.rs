//! STARTTLS with a self-signed certificate, and loading certificates.

use std::path::PathBuf;
use std::sync::Arc;

use mailfwd_smtp_in::{SmtpConfig, TlsError, load_tls};
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tempfile::TempDir;
use tokio_rustls::TlsConnector;

use crate::harness::{Client, Mailfwd, addr, config, queued_id};

/// A self-signed certificate for `localhost`, in PEM files, and a client that trusts it.
pub struct TestTls {
    pub server: Arc<rustls::ServerConfig>,
    pub connector: TlsConnector,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

pub fn test_tls() -> TestTls {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = load_tls(&cert, &key).unwrap();

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TestTls {
        server,
        connector: TlsConnector::from(Arc::new(client)),
        cert,
        key,
        _dir: dir,
    }
}

/// The client side of the handshake, after the server said 220.
async fn handshake(client: Client, tls: &TestTls) -> Client {
    let (stream, session) = client.into_parts();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tls.connector.connect(name, stream).await.unwrap();
    Client::new(Box::new(stream), session)
}

fn with_tls(tls: &TestTls) -> SmtpConfig {
    SmtpConfig {
        tls: Some(Arc::clone(&tls.server)),
        ..config()
    }
}

#[tokio::test]
async fn starttls_upgrades_and_starts_the_session_over() {
    let tls = test_tls();
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(with_tls(&tls)).await;
    let ehlo = client.ehlo().await;
    assert_eq!(ehlo.line(), "250 STARTTLS");
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    let ready = client.cmd("STARTTLS", 220).await;
    assert_eq!(ready.line(), "220 2.0.0 Ready to start TLS");
    let mut client = handshake(client, &tls).await;
    // Everything said before TLS is forgotten: EHLO is needed again, MAIL is gone.
    client.cmd("MAIL FROM:<a@b.test>", 503).await;
    let ehlo = client.ehlo().await;
    assert!(
        !ehlo.lines.iter().any(|line| line.contains("STARTTLS")),
        "{ehlo:?}"
    );
    assert_eq!(ehlo.line(), "250 CHUNKING");
    client.cmd("STARTTLS", 503).await;
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    let id = queued_id(&client.data(b"Subject: secret\r\n\r\nsecret\r\n.\r\n").await);
    client.cmd("QUIT", 221).await;
    client.finished().await;

    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.id.to_string(), id);
    assert!(stored[0].0.email.tls);
    assert_eq!(stored[0].1, b"Subject: secret\r\n\r\nsecret\r\n");
}

#[tokio::test]
async fn commands_sent_with_starttls_are_thrown_away() {
    let tls = test_tls();
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(with_tls(&tls)).await;
    client.ehlo().await;
    client
        .send("STARTTLS\r\nMAIL FROM:<evil@evil.test>\r\nRCPT TO:<sales@acme.test>\r\n")
        .await;
    client.expect_reply(220).await;
    let mut client = handshake(client, &tls).await;
    // Had the injected MAIL and RCPT run, these would get other replies first.
    let ehlo = client.ehlo().await;
    assert_eq!(ehlo.lines[0], "250-mx.test");
    client.cmd("MAIL FROM:<good@sender.test>", 250).await;
    client.cmd("RCPT TO:<info@acme.test>", 250).await;
    queued_id(&client.data(b"Subject: ok\r\n\r\nok\r\n.\r\n").await);
    client.cmd("QUIT", 221).await;
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    let envelope = &stored[0].0.email.envelope;
    assert_eq!(envelope.sender, Some(addr("good@sender.test")));
    assert_eq!(envelope.recipients, [addr("info@acme.test")]);
}

#[tokio::test]
async fn starttls_without_a_certificate_is_not_offered() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.ehlo().await;
    assert_eq!(
        client.cmd("STARTTLS", 502).await.line(),
        "502 5.5.1 Command not implemented"
    );
    client.cmd("NOOP", 250).await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn load_tls_names_the_file_it_could_not_use() {
    let tls = test_tls();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let error = load_tls(&missing, &tls.key).unwrap_err();
    assert!(matches!(error, TlsError::Certificate { .. }));
    assert!(error.to_string().contains("missing.pem"), "{error}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let error = load_tls(&tls.cert, &garbage).unwrap_err();
    assert!(matches!(error, TlsError::PrivateKey { .. }));
    assert!(error.to_string().contains("garbage.pem"), "{error}");

    let error = load_tls(&garbage, &tls.key).unwrap_err();
    assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");

    let other = test_tls();
    let error = load_tls(&tls.cert, &other.key).unwrap_err();
    assert!(matches!(error, TlsError::Config { .. }), "{error}");
    assert!(error.to_string().contains("cert.pem"), "{error}");
}
