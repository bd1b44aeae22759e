#!/usr/bin/env bash
# Installs everything the test suite needs beyond the Rust toolchain, on Debian 12.
#
# Idempotent and fast when everything is already there: each part checks first and
# installs only what is missing (`apt-get update` runs only when a package is missing).
#
#   apt:    build tools for librdkafka (built from source by the `rdkafka` crate:
#           make, gcc, g++, pkg-config, zlib1g-dev), kcat, golang-go and Debian's
#           Sarama (golang-github-shopify-sarama-dev, used in GOPATH mode),
#           iproute2 and iptables (the fault-injection harness's network namespaces,
#           partitions and packet loss)
#   python: a venv at .venv/ with tests/clients/python/requirements.txt
#   node:   `npm ci` in tests/clients/node/
#
# Usage: bash scripts/install-test-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { echo "[install-test-deps] $*" >&2; }
SECONDS=0

# ---------------------------------------------------------------------------- apt
# librdkafka's bundled build (rdkafka-sys, default features + zstd) runs
# `./configure && make libs`: it needs a C and a C++ compiler, make, pkg-config and
# zlib headers (libz-sys falls back to its own copy, but the system one is faster).
# zstd comes from the zstd-sys crate. No cmake, curl, ssl or sasl with these features.
APT_PACKAGES=(make gcc g++ pkg-config zlib1g-dev kcat golang-go golang-github-shopify-sarama-dev)
# isthmus-jepsen's netns runtime: `ip netns`, veth pairs, and iptables rules (partitions,
# `statistic` drops, the REDIRECT that sends traffic between sites through the WAN proxy).
APT_PACKAGES+=(iproute2 iptables)

# The venv is made with the first Python that has a working `venv` + `ensurepip`;
# only if none has, Debian's python3-venv is installed for /usr/bin/python3.
PYTHON_FOR_VENV=""
for candidate in "${PYTHON:-python3}" /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        PYTHON_FOR_VENV=$(command -v "$candidate")
        break
    fi
done
if [[ -z $PYTHON_FOR_VENV ]]; then
    APT_PACKAGES+=(python3 python3-venv)
    PYTHON_FOR_VENV=/usr/bin/python3
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || {
            log "need root (or sudo) to install: ${missing[*]}"
            exit 1
        }
        SUDO=(sudo -n)
    fi
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
else
    log "apt: all present"
fi

# Sarama from Debian lives under /usr/share/gocode (GOPATH mode, see tests/clients/go).
if [[ ! -d /usr/share/gocode/src/github.com/Shopify/sarama ]]; then
    log "Sarama not found under /usr/share/gocode/src/github.com/Shopify/sarama"
    exit 1
fi

# ------------------------------------------------------------------------- python
VENV=$ROOT/.venv
REQS=$ROOT/tests/clients/python/requirements.txt
REQS_SUM=$(sha256sum "$REQS" | cut -d' ' -f1)
STAMP=$VENV/.isthmus-requirements.sha256
if [[ -x $VENV/bin/python && -f $STAMP && $(cat "$STAMP") == "$REQS_SUM" ]] &&
    "$VENV/bin/python" -c 'import kafka, confluent_kafka' >/dev/null 2>&1; then
    log "python: .venv up to date"
else
    if ! [[ -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "python: creating .venv with $PYTHON_FOR_VENV"
        rm -rf "$VENV"
        "$PYTHON_FOR_VENV" -m venv "$VENV"
    fi
    log "python: installing $(grep -cv '^\s*\(#\|$\)' "$REQS") requirement(s)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q \
        --no-input -r "$REQS"
    "$VENV/bin/python" -c 'import kafka, confluent_kafka'
    echo "$REQS_SUM" >"$STAMP"
fi

# --------------------------------------------------------------------------- node
NODE_DIR=$ROOT/tests/clients/node
command -v npm >/dev/null || {
    log "npm not found: install Node.js 20+ (Debian: apt-get install nodejs npm)"
    exit 1
}
LOCK_SUM=$(cat "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)
NODE_STAMP=$NODE_DIR/node_modules/.isthmus-lock.sha256
if [[ -f $NODE_STAMP && $(cat "$NODE_STAMP") == "$LOCK_SUM" && -d $NODE_DIR/node_modules/kafkajs ]]; then
    log "node: node_modules up to date"
else
    log "node: npm ci"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$LOCK_SUM" >"$NODE_STAMP"
fi

log "done in ${SECONDS}s"
