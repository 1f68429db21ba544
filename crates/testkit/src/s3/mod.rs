//! A real S3-protocol server in the test process: s3s-fs on 127.0.0.1:0, for the S3
//! adapter's suites and for end-to-end tests of the real binary (see
//! [`S3Server::env`]), with failures on demand ([`Faults`]).

mod faults;

use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tempfile::TempDir;
use tokio::net::TcpListener;

pub use faults::{Fault, FaultRule, Faults, Operation};

use faults::FaultyService;

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "mailfwd-test";
/// The secret key that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "mailfwd-test-secret";

/// A running server. It serves until the test's runtime stops, even if this is dropped
/// (a store handed out alone keeps working), and then its directory is removed.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The directory that holds one subdirectory per bucket (and, at the top, the parts
    /// of multipart uploads under way).
    pub root: PathBuf,
    /// Failures to inject into the requests the server receives.
    pub faults: Faults,
    _dir: Arc<TempDir>,
}

impl S3Server {
    /// Starts a server on a fresh directory with the empty bucket `bucket`.
    pub async fn start(bucket: &str) -> S3Server {
        let dir = tempfile::tempdir().expect("a temporary directory for the S3 server");
        let root = dir.path().to_owned();
        std::fs::create_dir_all(root.join(bucket)).expect("create the bucket directory");
        let fs = s3s_fs::FileSystem::new(&root).expect("an s3s-fs file system");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let faults = Faults::default();
        let service = FaultyService::new(builder.build(), faults.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let address = listener.local_addr().expect("the bound address");
        let dir = Arc::new(dir);
        let serving = Arc::clone(&dir);
        tokio::spawn(async move {
            let _serving = serving;
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        S3Server {
            endpoint: format!("http://{address}"),
            root,
            faults,
            _dir: dir,
        }
    }

    /// The environment a mailfwd process needs to use this server, with an
    /// `s3://BUCKET/PREFIX` email store URL.
    #[must_use]
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("MAILFWD_S3_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Where the object `key` of `bucket` is on disk.
    #[must_use]
    pub fn path_of(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// The files of multipart uploads under way: their ids, parts and metadata, which
    /// s3s-fs keeps at the top of its directory beside the buckets. Empty when no upload
    /// was left behind.
    #[must_use]
    pub fn unfinished_uploads(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .expect("read the server's directory")
            .map(|entry| {
                let entry = entry.expect("a directory entry");
                entry.file_name().to_string_lossy().into_owned()
            })
            .filter(|name| name.starts_with(".upload") || name.contains(".upload-"))
            .collect();
        names.sort();
        names
    }
}
