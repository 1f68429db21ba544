//! `mailfwd reprocess`: run stored emails through forwarding again, over the gRPC API
//! of a running `mailfwd serve`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use mailfwd_grpc::pb::forwarding_client::ForwardingClient;
use mailfwd_grpc::pb::{ListReceivedEmailsRequest, ReprocessEmailRequest, ReprocessOutcome};
use thiserror::Error;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::cli::ReprocessArgs;
use crate::config::Config;

/// Why `mailfwd reprocess` could not do all it was asked.
#[derive(Debug, Error)]
pub enum ReprocessError {
    /// The configured token cannot be sent as an HTTP header.
    #[error("MAILFWD_API_TOKEN holds characters not allowed in a header")]
    TokenNotAHeader,
    /// `--grpc` (or the configured listener) is not a URL.
    #[error("'{url}' is not a gRPC URL such as http://127.0.0.1:50051: {source}")]
    NotAUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: tonic::transport::Error,
    },
    /// Nothing answers at the URL.
    #[error("cannot reach mailfwd's gRPC API at {url}: {source}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The connection error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The received log could not be listed.
    #[error("cannot list received emails: {}", .0.message())]
    List(tonic::Status),
    /// The received-log listing stopped part way.
    #[error("the received-email listing broke off: {}", .0.message())]
    ListBrokeOff(tonic::Status),
    /// Some emails were not reprocessed (each is printed with its reason).
    #[error("{failed} of {total} emails could not be reprocessed")]
    Incomplete {
        /// Calls that failed.
        failed: usize,
        /// Emails asked for.
        total: usize,
    },
}

/// Adds the bearer token, when one is configured, to every call.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Client = ForwardingClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// Reprocesses the emails asked for and prints a summary.
///
/// # Errors
/// A [`ReprocessError`] if the API cannot be reached or listed, or
/// [`ReprocessError::Incomplete`] after the summary if any call failed.
pub async fn run(config: Config, args: ReprocessArgs) -> Result<(), ReprocessError> {
    let url = grpc_url(&config, &args);
    let mut client = connect(&config, &url).await?;
    let ids = ids(&mut client, &args).await?;
    let failed = reprocess(client, &ids, &args).await;
    if failed == 0 {
        Ok(())
    } else {
        Err(ReprocessError::Incomplete {
            failed,
            total: ids.len(),
        })
    }
}

async fn connect(config: &Config, url: &str) -> Result<Client, ReprocessError> {
    let bearer = match &config.api_token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .map_err(|_| ReprocessError::TokenNotAHeader)?,
        ),
        None => None,
    };
    let not_a_url = |source| ReprocessError::NotAUrl {
        url: url.to_owned(),
        source,
    };
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(not_a_url)?
        .connect()
        .await
        .map_err(|source| ReprocessError::Unreachable {
            url: url.to_owned(),
            source,
        })?;
    Ok(ForwardingClient::with_interceptor(channel, Bearer(bearer)))
}

fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

/// The ids to reprocess: those given, or the received log's window.
async fn ids(client: &mut Client, args: &ReprocessArgs) -> Result<Vec<String>, ReprocessError> {
    let Some(since) = args.since else {
        return Ok(args.ids.clone());
    };
    let now = SystemTime::now();
    let request = ListReceivedEmailsRequest {
        since: Some(timestamp(now - since)),
        until: Some(timestamp(now - args.until.unwrap_or(Duration::ZERO))),
    };
    let emails = client
        .list_received_emails(request)
        .await
        .map_err(ReprocessError::List)?;
    emails
        .into_inner()
        .map_ok(|email| email.email_id)
        .try_collect()
        .await
        .map_err(ReprocessError::ListBrokeOff)
}

/// `--grpc`, else the configured listener (its loopback address if it listens on all).
fn grpc_url(config: &Config, args: &ReprocessArgs) -> String {
    args.grpc.clone().unwrap_or_else(|| {
        let mut address = config.grpc_listen;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{address}")
    })
}

/// Reprocesses `ids`, printing each failure and a summary; returns how many failed.
async fn reprocess(client: Client, ids: &[String], args: &ReprocessArgs) -> usize {
    let progress = ProgressBar::new(ids.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} reprocessing [{bar:40}] {pos}/{len} ({eta})")
    {
        progress.set_style(style.progress_chars("=> "));
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = 0;
    let calls = stream::iter(ids.iter().cloned())
        .map(|id| {
            let mut client = client.clone();
            let force = args.force;
            async move {
                (
                    id.clone(),
                    client
                        .reprocess_email(ReprocessEmailRequest {
                            email_id: id,
                            force,
                        })
                        .await,
                )
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    tokio::pin!(calls);
    while let Some((id, result)) = calls.next().await {
        progress.inc(1);
        match result {
            Ok(reply) => {
                for result in reply.into_inner().results {
                    let outcome = ReprocessOutcome::try_from(result.outcome)
                        .unwrap_or(ReprocessOutcome::Unspecified);
                    *outcomes
                        .entry(
                            outcome
                                .as_str_name()
                                .trim_start_matches("REPROCESS_OUTCOME_")
                                .to_lowercase(),
                        )
                        .or_default() += 1;
                }
            }
            Err(status) => {
                failed += 1;
                progress.suspend(|| eprintln!("{id}: {:?}: {}", status.code(), status.message()));
            }
        }
    }
    progress.finish_and_clear();
    let summary: Vec<String> = outcomes
        .iter()
        .map(|(outcome, count)| format!("{count} {outcome}"))
        .collect();
    println!(
        "{} emails reprocessed, {failed} failed; destinations: {}",
        ids.len() - failed,
        if summary.is_empty() {
            "none".to_owned()
        } else {
            summary.join(", ")
        }
    );
    failed
}
