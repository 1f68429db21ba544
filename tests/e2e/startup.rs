//! How `mailfwd serve` refuses to start: the exit status says whose fault it is (78:
//! the configuration; 1: the rest), stderr says what and where, in plain text.

use crate::harness::run;

const ESC: u8 = 0x1b;

#[test]
fn a_port_in_use_is_named_and_the_plain_log_has_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = run(
        data.path(),
        &["serve"],
        &[
            ("MAILFWD_HTTP_LISTEN", "127.0.0.1:0"),
            ("MAILFWD_SMTP_LISTEN", "127.0.0.1:0"),
            ("MAILFWD_GRPC_LISTEN", &address),
            ("MAILFWD_LOG_FORMAT", "text"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen for gRPC on {address}")),
        "{stderr}"
    );
    // stderr is a pipe here, as under systemd or a log collector.
    assert!(!output.stderr.contains(&ESC), "{stderr:?}");
}

#[test]
fn a_bad_duration_stops_the_start_naming_the_variable_and_the_value() {
    let data = tempfile::tempdir().unwrap();
    let output = run(
        data.path(),
        &["serve"],
        &[("MAILFWD_DELIVERY_LEASE", "soon")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.starts_with("mailfwd: configuration error: delivery_lease (MAILFWD_DELIVERY_LEASE)")
            && stderr.contains("'soon' is not a duration"),
        "{stderr}"
    );
}
