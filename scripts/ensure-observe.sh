#!/usr/bin/env bash
# Host tools the observability tests and scripts/bench-observe.sh use (issue #16):
#   prometheus                    scrapes `pgbox metrics` (the test reads pg_up back)
#   prometheus-postgres-exporter  the reference whose metric names pgbox copies
#   tmux                          drives `pgbox top` in a real terminal
#   curl                          scrapes in the benchmark
# Debian's packages ship systemd units on 9090/9187; the tests never rely on them
# and start their own processes on free ports. Safe to run again.
set -euo pipefail

log() { printf 'ensure-observe: %s\n' "$*" >&2; }
die() { printf 'ensure-observe: error: %s\n' "$*" >&2; exit 1; }

need=()
[ -x /usr/bin/prometheus ] || need+=(prometheus)
[ -x /usr/bin/prometheus-postgres-exporter ] || need+=(prometheus-postgres-exporter)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ "${#need[@]}" -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || die "missing ${need[*]}; install them (apt-get install ${need[*]}) or run this script as root"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
log "installing ${need[*]}"
# policy-rc.d keeps the packages' services from starting where an init system would.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || status=$?
[ "$made_policy" = 1 ] && rm -f "$policy"
exit "$status"
