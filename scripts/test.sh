#!/usr/bin/env bash
# The whole test suite, from a fresh clone: builds everything and runs every test
# (unit tests, the store conformance suites, the privacy property tests, and the integration
# binary that drives real server processes over real sockets), then prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

# Third-party peers the tests check our output with (each installed only when missing):
# the OASIS STIX validator and TAXII client and PyMISP (PyPI), and BIND's named-checkzone
# (Debian bind9-utils). Every test uses the repository's own data under testdata/ and data/,
# and starts its own servers on 127.0.0.1 with ephemeral ports.
scripts/install-test-deps.sh

cargo build --workspace --all-targets --locked

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --locked -- --test-threads="${TEST_THREADS:-2}" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
        }
    }
    END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
