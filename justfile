# Routine tasks. `just --list` shows them.

# Run the service on the embedded default (SQLite + local files in ./data).
run *ARGS:
    cargo run -p mailfwd -- serve {{ARGS}}

# The whole test suite (the same command the README and CI use).
test:
    cargo test --workspace

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: resolve at 1,000,000 rules in SQLite, and a 100,000-row CSV import over HTTP.
bench:
    cargo bench -p mailfwd-sqlite --bench resolve
    cargo bench -p mailfwd-http --bench import

# Release build of the binary (target/release/mailfwd).
build:
    cargo build --release -p mailfwd
