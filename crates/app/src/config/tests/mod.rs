//! Configuration tests, one file per concern: loading and durations, the inbound
//! (SMTP and API) settings, the delivery settings.

use std::ffi::OsString;
use std::time::Duration;

use super::*;

mod delivery;
mod inbound;
mod loading;
mod own;
mod protection;

pub(super) const MINUTE: Duration = Duration::from_secs(60);

/// Loads with only `vars` in the environment.
pub(super) fn load_env(file: Option<&Path>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load_with(file, |name| {
        vars.iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| OsString::from(value))
    })
}

pub(super) fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mailfwd.toml");
    std::fs::write(&file, text).expect("write");
    (dir, file)
}
