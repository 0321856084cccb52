#!/usr/bin/env bash
# Benchmark for `pgbox up` (issue: foundation). Prints figures and ratios; asserts nothing.
#
#  1. time to ready on first start (initdb included)
#  2. `pgbox up` on an initialised, stopped project, against the same container
#     started with `docker start` and a 1 s `pg_isready` poll, both probing at
#     once and probing first after 1 s as an engine health check does,
#     alternating, N rounds each, in one run
#  3. wall time of `pgbox status` and `pgbox url`
# Usage: scripts/bench-up.sh [ROUNDS]   (needs an engine: scripts/ensure-engine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"
cargo build --release --quiet
PGBOX="$PWD/target/release/pgbox"
work=$(mktemp -d /tmp/pgbox-bench.XXXXXX)
name="bench$$"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { (cd "$work" && "$PGBOX" down --purge --yes -q) || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.3f}')" "$1" "$(now)"; }

"$PGBOX" init --yes -q --name "$name" --port "$port"
t0=$(now); "$PGBOX" up -q >/dev/null; first=$(since "$t0")
echo "first start (initdb included): ${first}s"
"$PGBOX" down -q

pgbox_times=(); docker_times=(); hc_times=()
for _ in $(seq "$ROUNDS"); do
    t0=$(now); "$PGBOX" up -q >/dev/null; pgbox_times+=("$(since "$t0")")
    "$PGBOX" down -q
    # Poll probing at once, then every second (the most favourable 1 s poll).
    t0=$(now)
    docker start "pgbox-$name" >/dev/null
    until docker exec "pgbox-$name" pg_isready -h 127.0.0.1 -q; do sleep 1; done
    docker_times+=("$(since "$t0")")
    "$PGBOX" down -q
    # A health check with interval 1s: the first probe runs one interval after start.
    t0=$(now)
    docker start "pgbox-$name" >/dev/null
    sleep 1
    until docker exec "pgbox-$name" pg_isready -h 127.0.0.1 -q; do sleep 1; done
    hc_times+=("$(since "$t0")")
    "$PGBOX" down -q
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.3f", s/NR}'; }
# The poll's time depends on where its 1 s grid falls, so the mean is the fair figure.
mp=$(mean "${pgbox_times[@]}"); md=$(mean "${docker_times[@]}")
echo "pgbox up (restart): mean ${mp}s, median $(median "${pgbox_times[@]}")s   [${pgbox_times[*]}]"
echo "docker start + 1s pg_isready poll: mean ${md}s, median $(median "${docker_times[@]}")s   [${docker_times[*]}]"
mh=$(mean "${hc_times[@]}")
echo "docker start + health-check-style 1s poll: mean ${mh}s   [${hc_times[*]}]"
python3 -c "import sys; p,d,h=map(float,sys.argv[1:]); print(f'ratio (means): immediate poll/pgbox {d/p:.2f}x, health-check poll/pgbox {h/p:.2f}x')" "$mp" "$md" "$mh"

"$PGBOX" up -q >/dev/null
for cmd in status url; do
    ts=()
    for _ in $(seq 10); do t0=$(now); "$PGBOX" "$cmd" >/dev/null; ts+=("$(since "$t0")"); done
    echo "pgbox $cmd, median of 10: $(median "${ts[@]}")s"
done
