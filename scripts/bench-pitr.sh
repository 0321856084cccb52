#!/usr/bin/env bash
# Benchmark for `[backup] pitr` (issue 13). Prints figures and ratios.
#
# In one run, on fresh PostgreSQL 15 projects of its own:
#  1. the cost of archiving: pgbench tps (scale SCALE, SECONDS, -c 4 -j 2 -N) on a
#     project with pitr off and one with pitr on, benched in alternation ROUNDS times,
#     and the ratio of the medians;
#  2. the data at risk under archive_timeout (10s, then 60s) on a quiet server: right
#     after a segment switch, commit one row, note its segment (pg_walfile_name) and
#     the host time, and poll `pgbox status --json` until `archive.last_archived_wal`
#     reaches that segment; the gap is the worst case, about archive_timeout. A second
#     sample commits halfway between switches;
#  3. `pgbox restore --to-time` (a base backup, writes, the target, one more row)
#     against `pgbox restore <dump> --yes` of the same database (taken with
#     `pgbox backup`), and the ratio.
# Usage: scripts/bench-pitr.sh [SCALE] [SECONDS] [ROUNDS]   (needs an engine: scripts/ensure-engine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-10}"
SECONDS_RUN="${2:-20}"
ROUNDS="${3:-3}"
cargo build --quiet
PGBOX="$PWD/target/debug/pgbox"
work=$(mktemp -d /tmp/pgbox-bench-pitr.XXXXXX)
projects=()
cleanup() {
    for d in "${projects[@]}"; do (cd "$d" && "$PGBOX" down --purge --yes -q) || true; done
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# project NAME PITR [TIMEOUT]: a new PostgreSQL 15 project in $work/NAME, started.
project() {
    local dir="$work/$1"
    mkdir -p "$dir"
    projects+=("$dir")
    (cd "$dir" && "$PGBOX" init --yes -q --name "$1" --port "$(free_port)" --storage direct --pg-version 15 \
        --base-image debian:bookworm-slim)
    [ "$2" = off ] || set_pitr "$1" "${3:-60s}"
    (cd "$dir" && "$PGBOX" up -q >/dev/null)
}
# set_pitr NAME TIMEOUT: `[backup] pitr = true` and archive_timeout in NAME's pgbox.toml.
set_pitr() {
    local toml="$work/$1/pgbox.toml"
    sed -i '/^pitr = /d; /^archive_timeout = /d' "$toml"
    sed -i "s/^\[backup\]\$/[backup]\npitr = true\narchive_timeout = \"$2\"/" "$toml"
}
sql() { (cd "$work/$1" && "$PGBOX" psql -X -qAt -c "$2"); }
# archive NAME: status --json's archive object, as "LAST_WAL WAITING FAILING" (- when none).
archive() {
    (cd "$work/$1" && { "$PGBOX" status --json 2>/dev/null || true; }) | python3 -c '
import json, sys
try:
    a = json.load(sys.stdin).get("archive") or {}
except ValueError:  # status not answering for a moment (a restart)
    a = {}
print(a.get("last_archived_wal") or "-", a.get("waiting", 0), str(a.get("failing", False)).lower())'
}
# archived_past NAME SEGMENT: wait until SEGMENT (or a later one) is archived.
archived_past() {
    local last waiting failing
    while :; do
        read -r last waiting failing < <(archive "$1")
        [ "$failing" = false ] || { echo "archiving is failing on $1" >&2; exit 1; }
        [ "$last" = - ] || [[ "$last" < "$2" ]] || return 0
        sleep 0.2
    done
}
# drained NAME: wait until no segment waits to be archived.
drained() {
    local last waiting failing
    while :; do
        read -r last waiting failing < <(archive "$1")
        [ "$failing" = false ] || { echo "archiving is failing on $1" >&2; exit 1; }
        [ "$waiting" != 0 ] || return 0
        sleep 0.5
    done
}

# 1. pgbench with and without archiving: two projects side by side, benched in
#    alternation (off, on, off, on, ...) so a machine that gets busier or quieter
#    during the run weighs on both; the median of each is compared.
declare -A tps runs
for mode in off on; do
    name="bp${mode}$$"
    project "$name" "$mode"
    docker exec -u postgres "pgbox-$name" pgbench -i -q -s "$SCALE" -U "$name" "$name" >/dev/null 2>&1
    sql "$name" "vacuum analyze" >/dev/null
done
for round in $(seq "$ROUNDS"); do
    for mode in off on; do
        name="bp${mode}$$"
        [ "$mode" = off ] || drained "$name"
        sql "$name" "checkpoint" >/dev/null
        t=$(docker exec -u postgres "pgbox-$name" pgbench -n -T "$SECONDS_RUN" -c 4 -j 2 -N -U "$name" "$name" 2>/dev/null |
            sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -n1)
        runs[$mode]="${runs[$mode]:-} $t"
        echo "round $round pitr $mode: $t tps"
    done
done
read -r last waiting _ < <(archive "bpon$$")
echo "archive after the runs: last $last, $waiting waiting"
for mode in off on; do
    read -ra vals <<<"${runs[$mode]}"
    tps[$mode]=$(python3 -c 'import sys, statistics; print(statistics.median(map(float, sys.argv[1:])))' "${vals[@]}")
    (cd "$work/bp${mode}$$" && "$PGBOX" down --purge --yes -q) || true
done
python3 - "${tps[off]}" "${tps[on]}" "$SCALE" "$SECONDS_RUN" "$ROUNDS" <<'PY'
import sys
off, on = map(float, sys.argv[1:3])
print(f"pgbench (scale {sys.argv[3]}, {sys.argv[4]}s x {sys.argv[5]} rounds, -c 4 -j 2 -N), median tps: pitr off {off:.0f}, pitr on {on:.0f}")
print(f"pitr on / off: {on/off:.3f} ({(1 - on/off) * 100:.1f}% lower; target < 10%)")
PY

# 2. Data at risk under archive_timeout, on a quiet server.
name="br$$"
project "$name" on 10s
sql "$name" "create table bench_risk (id serial primary key, at timestamptz default clock_timestamp())" >/dev/null
# gap NAME WAIT: switch segments, wait until that one is archived, sleep WAIT, commit a
# row; prints the seconds until its segment is archived.
gap() {
    local seg t0 line lsn
    seg=$(sql "$1" "select pg_walfile_name(pg_switch_wal())")
    archived_past "$1" "$seg"
    sleep "$2"
    # Two calls: psql -c runs both statements as one transaction, and right after a
    # switch the insert position is a segment boundary, which names the previous segment.
    sql "$1" "insert into bench_risk default values" >/dev/null
    t0=$(now)
    line=$(sql "$1" "select pg_current_wal_lsn() || ' ' || pg_walfile_name(pg_current_wal_lsn())")
    read -r lsn seg <<<"$line"
    archived_past "$1" "$seg"
    echo "$(since "$t0") $lsn $seg"
}
for timeout in 10 60; do
    if [ "$timeout" != 10 ]; then
        (cd "$work/$name" && "$PGBOX" down -q) >/dev/null
        set_pitr "$name" "${timeout}s"
        (cd "$work/$name" && "$PGBOX" up -q) >/dev/null
    fi
    shown=$(sql "$name" "show archive_timeout")
    read -r worst lsn seg < <(gap "$name" 0)
    echo "data at risk, archive_timeout $shown: ${worst}s from commit (lsn $lsn) to $seg archived, commit right after a switch (worst case)"
    read -r mid lsn seg < <(gap "$name" $((timeout / 2)))
    echo "data at risk, archive_timeout $shown: ${mid}s from commit (lsn $lsn) to $seg archived, commit $((timeout / 2))s after a switch"
done

# 3. Restore to a point against restore of a dump of the same database.
rname="bx$$"
project "$rname" on 60s
docker exec -u postgres "pgbox-$rname" pgbench -i -q -s "$SCALE" -U "$rname" "$rname" >/dev/null 2>&1
(cd "$work/$rname" && "$PGBOX" backup --base -q) >/dev/null
docker exec -u postgres "pgbox-$rname" pgbench -n -T 5 -c 2 -N -U "$rname" "$rname" >/dev/null 2>&1
sleep 1
point=$(sql "$rname" "select to_char(clock_timestamp() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US')")
want=$(sql "$rname" "select count(*) from pgbench_history")
sleep 1
sql "$rname" "insert into pgbench_history (tid, bid, aid, delta, mtime) values (1, 1, 1, 0, now())" >/dev/null
(cd "$work/$rname" && "$PGBOX" backup -q -o "$work/$rname.dump") >/dev/null
sql "$rname" "select pg_switch_wal()" >/dev/null
size=$(sql "$rname" "select pg_size_pretty(pg_database_size(current_database()))")
t0=$(now)
(cd "$work/$rname" && "$PGBOX" restore --to-time "$point" --yes -q) >/dev/null
pitr_s=$(since "$t0")
rows=$(sql "$rname" "select count(*) from pgbench_history")
[ "$rows" = "$want" ] || { echo "restore --to-time has $rows history rows, expected $want" >&2; exit 1; }
echo "restore --to-time: ${pitr_s}s for $size (pgbench_history $rows rows, as at the target)"
t0=$(now)
(cd "$work/$rname" && "$PGBOX" restore "$work/$rname.dump" --yes -q) >/dev/null
dump_s=$(since "$t0")
rows=$(sql "$rname" "select count(*) from pgbench_history")
echo "restore <dump>:    ${dump_s}s (pgbench_history $rows rows)"
python3 -c "import sys; print(f'restore --to-time / restore <dump>: {float(sys.argv[1])/float(sys.argv[2]):.2f}x')" "$pitr_s" "$dump_s"
