#!/usr/bin/env bash
# Installs the third-party tools the test suite checks threatfeed's output with, when missing:
#   - stix2-validator (OASIS), taxii2-client (OASIS), pymisp — from PyPI;
#   - named-checkzone — Debian's bind9-utils.
# Idempotent; prints what it installs.
set -euo pipefail

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "python3 not found; installing it (Debian)" >&2
    apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
fi

missing=()
"$PY" -c 'import stix2validator' 2>/dev/null || missing+=("stix2-validator")
"$PY" -c 'import taxii2client' 2>/dev/null || missing+=("taxii2-client")
"$PY" -c 'import pymisp' 2>/dev/null || missing+=("pymisp")
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing from PyPI: ${missing[*]}" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check "${missing[@]}" \
        || "$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages "${missing[@]}"
fi

if ! command -v named-checkzone >/dev/null 2>&1; then
    echo "installing Debian bind9-utils (named-checkzone)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9-utils >/dev/null
fi
