//! A real S3-protocol server in the test process: s3s-fs on 127.0.0.1:0.

use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "mailfwd-test";
pub const SECRET_KEY: &str = "mailfwd-test-secret";

/// A running server; it stops with the test's runtime.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The directory that holds one subdirectory per bucket.
    pub root: PathBuf,
}

impl S3Server {
    /// Starts a server on a fresh directory with the empty bucket `bucket`.
    pub async fn start(bucket: &str) -> S3Server {
        let root = crate::fresh_dir("s3-server");
        std::fs::create_dir_all(root.join(bucket)).expect("create the bucket directory");
        let fs = s3s_fs::FileSystem::new(&root).expect("an s3s-fs file system");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let address = listener.local_addr().expect("the bound address");
        tokio::spawn(async move {
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
        }
    }

    /// The environment a mailfwd process would have to use this server.
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
}
