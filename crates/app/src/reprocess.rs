//! `mailfwd reprocess`: run stored emails through forwarding again, over the gRPC API
//! of a running `mailfwd serve`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use mailfwd_grpc::pb::forwarding_client::ForwardingClient;
use mailfwd_grpc::pb::{ListReceivedEmailsRequest, ReprocessEmailRequest, ReprocessOutcome};
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::cli::ReprocessArgs;
use crate::config::Config;

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

/// Reprocesses the emails asked for and prints a summary; exits 1 if any call failed.
pub async fn run(config: Config, args: ReprocessArgs) -> ExitCode {
    match reprocess(&config, &args).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("mailfwd reprocess: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(config: &Config, url: &str) -> Result<Client, String> {
    let bearer = match &config.api_token {
        Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
            "MAILFWD_API_TOKEN holds characters not allowed in a header".to_owned()
        })?),
        None => None,
    };
    let channel = Channel::from_shared(url.to_owned())
        .map_err(|e| format!("'{url}' is not a gRPC URL such as http://127.0.0.1:50051: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot reach mailfwd's gRPC API at {url}: {e}"))?;
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
async fn ids(client: &mut Client, args: &ReprocessArgs) -> Result<Vec<String>, String> {
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
        .map_err(|s| format!("cannot list received emails: {}", s.message()))?;
    emails
        .into_inner()
        .map_ok(|email| email.email_id)
        .try_collect()
        .await
        .map_err(|s| format!("the received-email listing broke off: {}", s.message()))
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

async fn reprocess(config: &Config, args: &ReprocessArgs) -> Result<usize, String> {
    let mut client = connect(config, &grpc_url(config, args)).await?;
    let ids = ids(&mut client, args).await?;
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
    Ok(failed)
}
