#!/usr/bin/env bash
# Installs the third-party tools the test suite checks threatfeed's output with, when missing:
#   - stix2-validator (OASIS), taxii2-client (OASIS), pymisp — from PyPI;
#   - named-checkzone — Debian's bind9-utils;
#   - suricata (Suricata 7) — Debian's suricata (bookworm-backports on Debian 12).
# Idempotent; prints what it installs.
set -euo pipefail

# apt needs root: use sudo when not root.
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "python3 not found; installing it (Debian)" >&2
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3 python3-pip >/dev/null
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
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9-utils >/dev/null
fi

# The mirror this machine already uses for Debian release $1 (deb822 .sources or one-line .list).
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$1" '
            function check() { if (found == "" && hit && uri != "") found = uri; uri = ""; hit = 0 }
            /^[[:space:]]*$/ { check(); next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
            END { check(); if (found != "") print found }' "$f"
    done
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk -v suite="$1" '$1 == "deb" && $3 == suite { print $2 }'
}

if ! command -v suricata >/dev/null 2>&1; then
    echo "installing Debian suricata (suricata -T checks the exported rules)" >&2
    $SUDO apt-get update -qq
    policy="$(apt-cache policy suricata 2>/dev/null || true)"
    if grep -q 'Candidate: [0-9]' <<<"$policy"; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq suricata >/dev/null
    else
        # Debian 12 (bookworm) ships suricata in bookworm-backports only.
        codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
        if ! grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            mirror="$(debian_mirror "$codename" || true)"
            mirror="${mirror%%$'\n'*}"
            if [ -z "$codename" ] || [ -z "$mirror" ]; then
                echo "no Debian mirror found for ${codename:-this release}; install suricata by hand" >&2
                exit 1
            fi
            echo "deb $mirror ${codename}-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
            $SUDO apt-get update -qq
        fi
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t "${codename}-backports" suricata >/dev/null
    fi
fi

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian chromium (the dashboard's browser tests)" >&2
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

browser_dir="$(dirname "$0")/../crates/cli/tests/browser"
if [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "installing Debian nodejs and npm (the dashboard's browser tests)" >&2
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    echo "installing playwright-core from npm (no bundled browsers)" >&2
    (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi
