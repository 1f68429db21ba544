//! Starts the real `mailfwd` binary on free ports with its own data directory, and
//! stops it the way an operator would (SIGTERM), or the hard way (SIGKILL).

// Shared by the e2e tests and the memory benchmark; each uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `mailfwd` binary Cargo built for this test run.
#[must_use]
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailfwd"))
}

/// A running `mailfwd serve`.
pub struct Server {
    child: Child,
    /// The HTTP API base URL, e.g. `http://127.0.0.1:41234`.
    pub http: String,
    /// The SMTP listener, `127.0.0.1:PORT`.
    pub smtp: String,
    /// The gRPC API, `http://127.0.0.1:PORT`.
    pub grpc: String,
}

/// Runs a `mailfwd` subcommand to completion with the same data directory.
#[must_use]
pub fn run(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(binary())
        .args(args)
        .env_clear()
        .env("MAILFWD_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .output()
        .expect("run mailfwd")
}

impl Server {
    /// Starts `mailfwd serve` with `data_dir` and extra environment, on a free HTTP port,
    /// and waits until it says where it listens.
    #[must_use]
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut serve = Command::new(binary());
        serve.arg("serve");
        Server::spawn(serve, data_dir, env)
    }

    /// Starts `mailfwd serve` as [`Server::start`] does, with `data_dir` a filesystem of
    /// its own of `size` bytes (a tmpfs in a private mount namespace, gone with the
    /// process): a disk that really fills up.
    #[must_use]
    pub fn start_on_small_disk(data_dir: &Path, size: u64, env: &[(&str, &str)]) -> Server {
        const UNSHARE: &str = "/usr/bin/unshare";
        let works = Command::new(UNSHARE)
            .args(["--mount", "--propagation", "private", "/bin/true"])
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            works,
            "{UNSHARE} --mount failed: this test needs util-linux's unshare and the right \
             to make a mount namespace (root, or user namespaces)"
        );
        let mut serve = Command::new(UNSHARE);
        serve
            .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
            .arg("/bin/mount -t tmpfs -o size=\"$0\" mailfwd-test \"$1\" && exec \"$2\" serve")
            .arg(size.to_string())
            .arg(data_dir)
            .arg(binary());
        Server::spawn(serve, data_dir, env)
    }

    fn spawn(mut command: Command, data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = command
            .env_clear()
            .env("MAILFWD_DATA_DIR", data_dir)
            .env("MAILFWD_HTTP_LISTEN", "127.0.0.1:0")
            .env("MAILFWD_SMTP_LISTEN", "127.0.0.1:0")
            .env("MAILFWD_GRPC_LISTEN", "127.0.0.1:0")
            .env("MAILFWD_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mailfwd serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (http, smtp, grpc) = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    let _ = child.kill();
                    panic!("mailfwd serve did not report its HTTP address within 30 s")
                });
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let fields = &parsed["fields"];
            if let (Some(http), Some(smtp), Some(grpc)) = (
                fields["http"].as_str(),
                fields["smtp"].as_str(),
                fields["grpc"].as_str(),
            ) {
                break (
                    format!("http://{http}"),
                    smtp.to_owned(),
                    format!("http://{grpc}"),
                );
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            http,
            smtp,
            grpc,
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().expect("wait for mailfwd") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("mailfwd did not exit within 10 s of SIGTERM");
    }
}

impl Server {
    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL mailfwd");
        self.child.wait().expect("reap mailfwd");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server that relays every message to `relay` (a sink standing in for
    /// the destinations) and calls itself `mx.mailfwd.test`.
    pub fn relaying_to(data_dir: &Path, relay: std::net::SocketAddr) -> Server {
        let relay = relay.to_string();
        Server::start(
            data_dir,
            &[
                ("MAILFWD_RELAY", relay.as_str()),
                ("MAILFWD_HOSTNAME", "mx.mailfwd.test"),
            ],
        )
    }
}

/// The HTTP API calls several suites make.
impl Server {
    /// What `/metrics` shows now.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.http))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics as text")
    }

    /// Creates the rule `email` → `forward` (one address or a list); it must be `201`.
    pub async fn create_rule(&self, email: &str, forward: serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/forwards", self.http))
            .json(&serde_json::json!({"email": email, "forward": forward}))
            .send()
            .await
            .expect("POST /v1/forwards");
        assert_eq!(
            response.status().as_u16(),
            201,
            "creating the rule for {email}"
        );
    }

    /// Deletes the rule for `email`; it must be `204`.
    pub async fn delete_rule(&self, email: &str) {
        let response = reqwest::Client::new()
            .delete(format!("{}/v1/forwards/{email}", self.http))
            .send()
            .await
            .expect("DELETE /v1/forwards/{email}");
        assert_eq!(
            response.status().as_u16(),
            204,
            "deleting the rule for {email}"
        );
    }

    /// The deliveries of email `id`, as `GET /v1/emails/{id}` shows them.
    pub async fn deliveries(&self, id: &str) -> Vec<serde_json::Value> {
        let email: serde_json::Value = reqwest::get(format!("{}/v1/emails/{id}", self.http))
            .await
            .expect("GET /v1/emails/{id}")
            .json()
            .await
            .expect("a JSON email");
        email["deliveries"].as_array().cloned().unwrap_or_default()
    }
}

/// Makes sure `python3` can import every one of `modules`, installing `packages` from
/// PyPI with pip if one is missing (one install at a time, whichever test asks); panics
/// saying what failed. `.ci/run` installs them beforehand, to keep the install out of
/// the test timings.
pub fn ensure_python_modules(modules: &[&str], packages: &[&str]) {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let import = format!("import {}", modules.join(", "));
    let present = Command::new("python3")
        .args(["-c", &import])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if present {
        return;
    }
    let mut install = vec!["-m", "pip", "install", "--quiet"];
    install.extend_from_slice(packages);
    match Command::new("python3").args(&install).status() {
        Ok(status) if status.success() => {}
        other => panic!(
            "Python cannot `{import}`, and `python3 {}` failed ({other:?})",
            install.join(" ")
        ),
    }
}
