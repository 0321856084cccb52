#!/usr/bin/env bash
# Makes sure the S3-compatible test server (moto's server mode) is installed.
#
# pgbox's off-site tests (tests/it/offsite.rs) and scripts/bench-offsite.sh start
# their own `moto_server` on a free 127.0.0.1 port. This script installs moto with
# its server extras and boto3 (the benchmark's by-hand upload) from PyPI into a venv
# at $PGBOX_MOTO_VENV (default /opt/pgbox-test/moto), using Debian's python3 and
# python3-venv (installed with apt-get when missing and we are root), plus Debian's
# `age` for the benchmark's by-hand pipeline. Safe to run again: every step checks
# first.
set -euo pipefail

log() { printf 'ensure-s3: %s\n' "$*" >&2; }
die() { printf 'ensure-s3: error: %s\n' "$*" >&2; exit 1; }

VENV="${PGBOX_MOTO_VENV:-/opt/pgbox-test/moto}"
PY=/usr/bin/python3
is_root() { [ "$(id -u)" = 0 ]; }

need=()
[ -x "$PY" ] || need+=(python3)
"$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v age >/dev/null 2>&1 || need+=(age)
if [ "${#need[@]}" -gt 0 ]; then
    is_root || die "missing ${need[*]}; install it (apt-get install ${need[*]}) or run this script as root"
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c 'import moto.server, boto3' >/dev/null 2>&1; then
    log "moto ready in $VENV"
    exit 0
fi

log "installing moto[server] and boto3 into $VENV"
mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6' 'boto3>=1.34'
"$VENV/bin/python" -c 'import moto.server, boto3' || die "moto did not install into $VENV"
log "moto ready in $VENV"
