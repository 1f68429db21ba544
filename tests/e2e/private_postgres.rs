//! A PostgreSQL server of one test's own, which the test may stop and start: the shared
//! server at 127.0.0.1:5432 cannot be stopped under the other tests running at once.
//!
//! It is made with the installed server's `initdb` in a temporary directory, listens
//! on 127.0.0.1 at a free port with trust authentication, and is stopped and deleted
//! when dropped. As root, its commands run as the `postgres` user (the server refuses
//! to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private cluster; see the module documentation.
pub(crate) struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

/// The directory of the installed server's programs (the newest major version).
fn server_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server programs under /usr/lib/postgresql/*/bin (initdb, pg_ctl); \
             this test starts a server of its own: apt-get install postgresql"
        ),
    }
}

fn is_root() -> bool {
    let id = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&id.stdout).trim() == "0"
}

impl PrivateCluster {
    /// A new cluster, created but not started.
    pub(crate) fn create() -> PrivateCluster {
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("mailfwd-pg-")
            .tempdir()
            .expect("a directory for the private cluster");
        if as_postgres {
            chown_to_postgres(dir.path());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let cluster = PrivateCluster {
            bin: server_bin(),
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("a UTF-8 path"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        cluster
    }

    /// Its data directory.
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A URL of its `postgres` database for `MAILFWD_DATABASE_URL`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub(crate) fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("a UTF-8 path"),
                "-l",
                log.to_str().expect("a UTF-8 path"),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server as an operator's restart does (`pg_ctl stop -m fast`): open
    /// sessions are ended, and nothing answers on the port until [`Self::start`].
    pub(crate) fn stop(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("a UTF-8 path"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// Runs one of the server's programs (as `postgres` when root); panics with its
    /// output if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl PrivateCluster {
    /// One of the server's programs, to run as `postgres` when root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.current_dir(self.dir.path());
        command
    }
}

/// Gives `path` to the `postgres` user, whose server must own its data directory.
fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["postgres:", path.to_str().expect("a UTF-8 path")])
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postgres {} failed", path.display());
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        // Not running (already stopped) is fine; the directory goes either way.
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}
