#!/usr/bin/env bash
# Issue #16's figures, in one run against one fresh project:
#   1. scrape time of `pgbox metrics` against Debian's postgres_exporter for the
#      same server (N scrapes each, alternating; median and ratio);
#   2. the load `pgbox top` puts on the server: CPU of its backend over a window,
#      with 200 client sessions connected (pgbench, throttled);
#   3. the RSS of the `pgbox top` and `pgbox metrics` processes;
#   4. the wall time of `pgbox stats` with those 200 sessions.
# Tools: scripts/ensure-observe.sh (prometheus-postgres-exporter, tmux, curl).
#
#   scripts/bench-observe.sh [-n SCRAPES] [PGBOX_BINARY]   (default target/release/pgbox)
set -euo pipefail
cd "$(dirname "$0")/.."

n=50
if [ "${1:-}" = -n ]; then
    n=$2
    shift 2
fi
bin=$(realpath "${1:-target/release/pgbox}")
[ -x "$bin" ] || { echo "no pgbox binary at $bin (cargo build --release)" >&2; exit 2; }
for t in /usr/bin/prometheus-postgres-exporter tmux curl; do
    command -v "$t" >/dev/null || { echo "missing $t: run sudo scripts/ensure-observe.sh" >&2; exit 2; }
done

work=$(mktemp -d /tmp/pgbox-bench-observe.XXXXXX)
name="bench-observe-$$"
sock="pgbox-bench-$$"
pids=()
cleanup() {
    tmux -L "$sock" kill-server 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    (cd "$work" && "$bin" down --purge --yes -q >/dev/null 2>&1) || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
cd "$work"
"$bin" init --yes -q --name "$name" --port "$port" >/dev/null
sed -i 's/^max_connections = .*/max_connections = 250/' pgbox.toml
"$bin" up -q >/dev/null
url=$("$bin" url)
rest=${url#*://}
user=${rest%%@*}
db=${rest##*/}
db=${db%%\?*}
container="pgbox-$name"

# 1. Scrape times.
mport=$(free_port)
eport=$(free_port)
"$bin" metrics --listen "127.0.0.1:$mport" 2>/dev/null &
pids+=($!)
metrics_pid=$!
envfile="$work/exporter.env"
(umask 077; printf 'DATA_SOURCE_NAME=postgresql://%s:%s@127.0.0.1:%s/%s?sslmode=disable\n' \
    "$user" "$(cat .pgbox/secrets/postgres_password)" "$port" "$db" >"$envfile")
# shellcheck source=/dev/null
( set -a; . "$envfile"; exec /usr/bin/prometheus-postgres-exporter --web.listen-address="127.0.0.1:$eport" --log.level=error ) &
pids+=($!)
for u in "$mport" "$eport"; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$u/metrics" | grep -q '^pg_up 1' && break; sleep 0.2; done
done
: >"$work/pgbox.ms"
: >"$work/exporter.ms"
for _ in $(seq "$n"); do
    curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$mport/metrics" >>"$work/pgbox.ms"
    curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$eport/metrics" >>"$work/exporter.ms"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m*1000}'; }
fastest() { sort -n "$1" | awk 'NR == 1 {printf "%.1f", $1*1000}'; }
pm=$(median "$work/pgbox.ms")
em=$(median "$work/exporter.ms")
echo "load average while scraping: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo "scrape, idle server ($n each): pgbox metrics ${pm} ms, postgres_exporter ${em} ms (median), ratio pgbox/exporter $(awk -v a="$pm" -v b="$em" 'BEGIN {printf "%.2f", a/b}')"
echo "fastest scrape: pgbox metrics $(fastest "$work/pgbox.ms") ms, postgres_exporter $(fastest "$work/exporter.ms") ms"
echo "pgbox's own timing of its last scrape: $(curl -fs "http://127.0.0.1:$mport/metrics" | awk '/^pgbox_scrape_duration_seconds/ {printf "%.1f ms", $2*1000}')"
echo "metrics families: pgbox $(curl -fs "http://127.0.0.1:$mport/metrics" | grep -c '^# TYPE'), exporter $(curl -fs "http://127.0.0.1:$eport/metrics" | grep -c '^# TYPE')"
echo "pgbox metrics RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$metrics_pid/status")"

# 2-4. 200 sessions (pgbench, throttled to 100 transactions/s in all), then top.
docker exec -u postgres "$container" pgbench -U "$user" -i -s 1 -q "$db" >/dev/null 2>&1
docker exec -u postgres "$container" pgbench -U "$user" -c 200 -j 2 -S -R 100 -T 60 "$db" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    c=$("$bin" psql -X -At -c "select count(*) from pg_stat_activity where application_name = 'pgbench'" 2>/dev/null || echo 0)
    [ "$c" -ge 200 ] && break
    sleep 0.3
done
echo "client sessions connected: $c"
s0=$(date +%s%N)
"$bin" stats >/dev/null
echo "pgbox stats with $c sessions: $(( ($(date +%s%N) - s0) / 1000000 )) ms"
tmux -L "$sock" new-session -d -s top -x 200 -y 60 "exec env NO_COLOR=1 '$bin' top"
top_pid=$(tmux -L "$sock" display -p -t top '#{pane_pid}')
backend=""
for _ in $(seq 50); do
    backend=$("$bin" psql -X -At -c "select pid from pg_stat_activity where application_name = 'pgbox top'" 2>/dev/null || true)
    [ -n "$backend" ] && break
    sleep 0.2
done
ticks() { docker exec "$container" awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
window=20
b0=$(ticks "$backend")
p0=$(awk '{print $14 + $15}' "/proc/$top_pid/stat")
sleep "$window"
b1=$(ticks "$backend")
p1=$(awk '{print $14 + $15}' "/proc/$top_pid/stat")
echo "pgbox top, ${window}s with $c sessions: its server backend used $(awk -v d=$((b1 - b0)) -v hz="$hz" -v w="$window" 'BEGIN {printf "%.1f", 100*d/hz/w}')% of one core; the pgbox process $(awk -v d=$((p1 - p0)) -v hz="$hz" -v w="$window" 'BEGIN {printf "%.1f", 100*d/hz/w}')%"
echo "pgbox top RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$top_pid/status")"
tmux -L "$sock" capture-pane -p -t top | grep -q 'sessions: ' && echo "top rendered $(tmux -L "$sock" capture-pane -p -t top | grep -o 'sessions: [0-9]*')"
