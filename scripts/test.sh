#!/usr/bin/env bash
# The whole test suite, from a fresh clone: builds everything and runs every test
# (unit tests, the store conformance suites, the privacy property tests, and the integration
# binary that drives real server processes over real sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

# Nothing else to install yet: every test uses the repository's own data under testdata/ and
# data/, and starts its own servers on 127.0.0.1 with ephemeral ports.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-2}"
