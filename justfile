# Routine tasks. `just --list` shows them.

# Run the service on the embedded default (SQLite + local files in ./data).
run *ARGS:
    cargo run -p mailfwd -- serve {{ARGS}}

# The end-to-end tests drive mailfwd with swaks and install it from Debian on first
# use if it is missing.
#
# The whole test suite (the same command the README and CI use).
test:
    cargo test --workspace

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# resolve at 1,000,000 rules in SQLite and through the rule cache, a 100,000-row CSV import over HTTP, the peak
# memory of the server receiving 20 concurrent 25 MB messages over SMTP and gRPC.
#
# Every benchmark, end-to-end forwarding throughput against Postfix included.
bench: bench-forward
    cargo bench -p mailfwd-sqlite --bench resolve
    cargo bench -p mailfwd-layers --bench cached_resolve
    cargo bench -p mailfwd-http --bench import
    cargo bench -p mailfwd --bench smtp_memory

# mailfwd and Postfix forwarding the same load to smtp-sink (installs Postfix if missing).
bench-forward:
    cargo build --release -p mailfwd
    ../shared/bench/forward-vs-postfix.sh target/release/mailfwd

# The same comparison with latency at a paced 500 msg/s, three rounds, median ratio.
bench-forward-latency:
    cargo build --release -p mailfwd
    ROUNDS=3 LATENCY_RATE=500 ../shared/bench/forward-vs-postfix.sh target/release/mailfwd

# The same comparison with 100 KB messages, and with a rule of 10 destinations.
bench-forward-variants:
    cargo build --release -p mailfwd
    SIZE=102400 ROUNDS=3 ../shared/bench/forward-vs-postfix.sh target/release/mailfwd
    ROUNDS=3 crates/app/benches/fanout.sh target/release/mailfwd

# Release build of the binary (target/release/mailfwd).
build:
    cargo build --release -p mailfwd

# A 50,000-message backlog (MESSAGES=100000 for issue 15's figure) accepted while the destination is down, then drained:
# drain rate next to the fresh-mail rate, peak RSS, metrics (installs Postfix's tools if missing).
bench-backlog:
    cargo build --release -p mailfwd
    mkdir -p target/bench-tmp
    TMPDIR="$PWD/target/bench-tmp" crates/app/benches/backlog.sh target/release/mailfwd

# A dead relay and 50,000 accepted messages: connection attempts in 95 s, WARN lines
# and peak RSS (a dead destination is backed off, not hammered; installs Postfix's
# tools if missing).
bench-relay-down:
    cargo build --release -p mailfwd
    crates/app/benches/relay_down.sh target/release/mailfwd

# The SMTP session fed arbitrary byte streams, many more cases than the test suite runs
# (CASES=N to choose): no panic, well-formed replies, nothing stored without its 250.
fuzz CASES="100000":
    SMTP_FUZZ_CASES={{CASES}} cargo test -p mailfwd-smtp-in --test session fuzz -- --nocapture

# Schemathesis against the real server from its /openapi.json (with and without a token),
# with many more cases than the test suite runs (installs schemathesis if missing).
fuzz-api EXAMPLES="500":
    MAILFWD_SCHEMATHESIS_EXAMPLES={{EXAMPLES}} cargo test -p mailfwd --test e2e schemathesis -- --nocapture

# Throughput on PostgreSQL with one instance and with two, next to SQLite and Postfix in
# the same run (ROUNDS=3 for three rounds; needs PostgreSQL at 127.0.0.1:5432).
bench-scale-out:
    cargo build --release -p mailfwd
    crates/app/benches/scale_out.sh target/release/mailfwd
