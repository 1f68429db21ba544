//! Opening a body store from its URL: `file://PATH` or `s3://BUCKET/PREFIX`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use thiserror::Error;

use crate::ObjectBodyStore;
use crate::durable::{LocalDisk, create_root};
use crate::remote;

/// The variable that points S3 clients at an S3-compatible server (MinIO, Ceph, …).
pub const ENDPOINT_VARIABLE: &str = "MAILFWD_S3_ENDPOINT";

/// Why a body store could not be opened from its URL.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The URL is neither `file://` nor `s3://`.
    #[error("'{url}' is not a supported email store URL: use file://PATH or s3://BUCKET/PREFIX")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
    },
    /// `file://` without a path, or `s3://` without a bucket.
    #[error("the email store URL '{url}' names no {missing}")]
    Incomplete {
        /// The URL as given.
        url: String,
        /// What it lacks: "directory" or "bucket".
        missing: &'static str,
    },
    /// The local directory could not be created or opened.
    #[error("cannot create the email directory '{}' for '{url}': {source}", path.display())]
    Directory {
        /// The URL as given.
        url: String,
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// `MAILFWD_S3_ENDPOINT` is not an `http://` or `https://` URL.
    #[error("{ENDPOINT_VARIABLE}='{endpoint}' (for '{url}') is not an http:// or https:// URL")]
    InvalidEndpoint {
        /// The URL as given.
        url: String,
        /// The endpoint as given.
        endpoint: String,
    },
    /// object_store rejected the configuration (bad region, credentials, bucket name …).
    #[error("cannot set up the email store '{url}': {source}")]
    Backend {
        /// The URL as given.
        url: String,
        /// What object_store said.
        source: object_store::Error,
    },
}

impl ObjectBodyStore {
    /// Opens the body store at `url`, reading S3 settings from the process environment.
    ///
    /// - `file://PATH` (relative or absolute, e.g. `file://./data/emails` or
    ///   `file:///var/lib/mailfwd/emails`): a local directory, created if missing.
    /// - `s3://BUCKET/PREFIX` (the prefix may be empty): an S3 bucket. Credentials,
    ///   region and other options come from the usual `AWS_*` variables (those
    ///   `AmazonS3Builder::from_env` reads); [`ENDPOINT_VARIABLE`] points at an
    ///   S3-compatible server, `http://` ones allowed. Requests are path-style unless
    ///   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`. Requests time out and are retried as
    ///   [`crate::remote`] says. Nothing is sent to S3 here: wrong credentials or a
    ///   missing bucket show on first use.
    ///
    /// # Errors
    /// [`OpenError`], naming the URL and what is wrong with it.
    pub fn from_url(url: &str) -> Result<Self, OpenError> {
        let env = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
        Self::from_url_with_env(url, env)
    }

    /// [`ObjectBodyStore::from_url`] with the environment given as `(name, value)` pairs
    /// instead of read from the process, for callers that hold settings themselves.
    ///
    /// # Errors
    /// [`OpenError`], naming the URL and what is wrong with it.
    pub fn from_url_with_env(
        url: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, OpenError> {
        if let Some(path) = url.strip_prefix("file://") {
            open_directory(url, path)
        } else if let Some(location) = url.strip_prefix("s3://") {
            open_bucket(url, location, env)
        } else {
            Err(OpenError::UnsupportedScheme {
                url: url.to_owned(),
            })
        }
    }
}

fn open_directory(url: &str, path: &str) -> Result<ObjectBodyStore, OpenError> {
    if path.is_empty() {
        return Err(OpenError::Incomplete {
            url: url.to_owned(),
            missing: "directory",
        });
    }
    let root = create_root(Path::new(path)).map_err(|source| OpenError::Directory {
        url: url.to_owned(),
        path: PathBuf::from(path),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|source| OpenError::Backend {
            url: url.to_owned(),
            source,
        })?
        // Sync each body's data before it is renamed into place and its directory after,
        // so a crash never leaves a visible but torn body; `LocalDisk` does the rest.
        .with_fsync(true);
    let disk = LocalDisk::new(root, true);
    Ok(ObjectBodyStore::with_disk(Arc::new(store), "", Some(disk)))
}

fn open_bucket(
    url: &str,
    location: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<ObjectBodyStore, OpenError> {
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    if bucket.is_empty() {
        return Err(OpenError::Incomplete {
            url: url.to_owned(),
            missing: "bucket",
        });
    }
    // Path-style by default: it works with every S3-compatible server; the
    // environment may still ask for virtual-hosted style. Timeouts and retries are
    // ours (see `remote`), set before the environment so that it may override them.
    let mut builder = AmazonS3Builder::new()
        .with_virtual_hosted_style_request(false)
        .with_client_options(remote::client_options())
        .with_retry(remote::retry_config());
    let mut endpoint = None;
    for (key, value) in env {
        if key == ENDPOINT_VARIABLE {
            endpoint = Some(value);
        } else if key.starts_with("AWS_")
            && let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
        {
            builder = builder.with_config(config, value);
        }
    }
    if let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) {
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        } else if !endpoint.starts_with("https://") {
            return Err(OpenError::InvalidEndpoint {
                url: url.to_owned(),
                endpoint,
            });
        }
        builder = builder.with_endpoint(endpoint);
    }
    let store = builder
        .with_bucket_name(bucket)
        .build()
        .map_err(|source| OpenError::Backend {
            url: url.to_owned(),
            source,
        })?;
    Ok(ObjectBodyStore::new(Arc::new(store), prefix, None))
}
