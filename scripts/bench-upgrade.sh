#!/usr/bin/env bash
# Benchmark for `pgbox upgrade` (issue 12). Prints figures and ratios.
#
# On a pgbench database (scale 20 by default), each on a fresh PostgreSQL 15 project
# with the same data, in one run:
#  1. pgbox upgrade --to 17 --method dump
#  2. pgbox upgrade --to 17 --method link
#  3. pgbox upgrade --to 17 --method copy
#  4. by hand: docker exec <15> pg_dumpall | docker exec -i <17> psql, into a fresh
#     PostgreSQL 17 project (the baseline)
# For 1-3 the downtime twice: as pgbox reports it ("no writes possible for X s"), and
# as a writer on the host sees it: a loop of INSERTs over TCP, one connection each,
# whose longest gap between two successful INSERTs during the upgrade is the time
# neither cluster accepted a write.
# Usage: scripts/bench-upgrade.sh [SCALE] [TO]   (needs an engine: scripts/ensure-engine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-20}"
TO="${2:-17}"
cargo build --quiet
PGBOX="$PWD/target/debug/pgbox"
work=$(mktemp -d /tmp/pgbox-bench-upgrade.XXXXXX)
projects=()
writer_pid=""
cleanup() {
    [ -z "$writer_pid" ] || kill "$writer_pid" 2>/dev/null || true
    for d in "${projects[@]}"; do (cd "$d" && "$PGBOX" down --purge --yes -q) || true; done
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# project NAME MAJOR: a new project in $work/NAME, started; prints its port.
project() {
    local dir="$work/$1" port base
    port=$(free_port)
    mkdir -p "$dir"
    projects+=("$dir")
    case "$2" in 15) base=debian:bookworm-slim ;; 17) base=debian:trixie-slim ;; *) base=debian:forky-slim ;; esac
    (cd "$dir" && "$PGBOX" init --yes -q --name "$1" --port "$port" --storage direct --pg-version "$2" --base-image "$base" &&
        "$PGBOX" up -q >/dev/null)
    echo "$port"
}
load() {
    docker exec -u postgres "pgbox-$1" pgbench -q -i -s "$SCALE" -U "$1" "$1" >/dev/null 2>&1
    docker exec -u postgres "pgbox-$1" psql -qAt -U "$1" -d "$1" -c "vacuum analyze" >/dev/null
}

# writer NAME PORT: INSERT in a loop until $work/stop exists; each success's time to $work/ok-NAME.
writer() {
    local url="postgresql://$1@127.0.0.1:$2/$1"
    PGPASSWORD=$(cat "$work/$1/.pgbox/secrets/postgres_password")
    export PGPASSWORD PGCONNECT_TIMEOUT=1
    psql -X -q "$url" -c "create table bench_writes (at timestamptz default now())" >/dev/null
    while [ ! -e "$work/stop" ]; do
        if psql -X -q "$url" -c "insert into bench_writes default values" >/dev/null 2>&1; then
            now >>"$work/ok-$1"
        else
            sleep 0.02
        fi
    done
}
# longest gap between two successful INSERTs in $work/ok-NAME
longest_gap() {
    python3 - "$work/ok-$1" <<'PY'
import sys
t = [float(l) for l in open(sys.argv[1])]
print(f"{max(b - a for a, b in zip(t, t[1:])):.2f}")
PY
}

declare -A wall down seen
for m in dump link copy; do
    name="u${m}$$"
    port=$(project "$name" 15)
    load "$name"
    rm -f "$work/stop"
    writer "$name" "$port" &
    writer_pid=$!
    sleep 2
    t0=$(now)
    out=$(cd "$work/$name" && "$PGBOX" upgrade --to "$TO" --method "$m" --yes 2>&1) || {
        echo "$out"
        exit 1
    }
    wall[$m]=$(since "$t0")
    sleep 2
    touch "$work/stop"
    wait "$writer_pid"
    writer_pid=""
    down[$m]=$(printf '%s\n' "$out" | sed -n 's/.*no writes possible for \([0-9.]*\)s.*/\1/p')
    seen[$m]=$(longest_gap "$name")
    rows=$(cd "$work/$name" && "$PGBOX" psql -X -At -c "select count(*) from pgbench_accounts")
    echo "$m: ${wall[$m]}s wall, downtime ${down[$m]}s reported, ${seen[$m]}s seen by the writer, pgbench_accounts ${rows} rows on $TO"
    printf '%s\n' "$out" | grep -E ' in [0-9.]+s' | sed 's/^/    /' || true
    (cd "$work/$name" && "$PGBOX" down --purge --yes -q) || true
done

# The baseline by hand: pg_dumpall from the old container piped into psql in a fresh new one.
old="h15$$"
new="h${TO}$$"
project "$old" 15 >/dev/null
load "$old"
project "$new" "$TO" >/dev/null
t0=$(now)
docker exec -u postgres "pgbox-$old" pg_dumpall -U "$old" |
    docker exec -i -u postgres "pgbox-$new" psql -X -q -U "$new" -d postgres >/dev/null 2>"$work/hand.err"
hand=$(since "$t0")
rows=$(docker exec -u postgres "pgbox-$new" psql -X -At -U "$new" -d "$old" -c "select count(*) from pgbench_accounts")
echo "by hand (pg_dumpall | psql): ${hand}s, pgbench_accounts ${rows} rows on $TO"

python3 - "$hand" "${wall[dump]}" "${wall[link]}" "${wall[copy]}" "${down[link]}" "${seen[link]}" <<'PY'
import sys
hand, dump, link, copy, link_down, link_seen = map(float, sys.argv[1:])
print(f"by hand / dump: {hand/dump:.2f}x (target >= 1.5)   by hand / link: {hand/link:.2f}x   by hand / copy: {hand/copy:.2f}x")
print(f"link downtime: {link_down:.1f}s reported, {link_seen:.1f}s seen (target < 10)")
PY
