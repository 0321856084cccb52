#!/usr/bin/env bash
# Benchmark for `[cluster]` (issue 18), in one run on Docker:
#   - failover time (kill of the leader's container -> first acknowledged write through
#     `pgbox url`): median and max over ROUNDS kills, for synchronous = true and false;
#   - rows lost (acknowledged, then missing; must be 0 with synchronous = true) and in doubt;
#   - pgbench tps (scale 10, -c 4 -j 2 -T SECONDS, inside the leader over its local socket)
#     of the single server, the asynchronous cluster and the synchronous cluster.
# Usage: scripts/bench-cluster.sh [ROUNDS] [SECONDS]   (needs scripts/ensure-engine.sh)
# Uses target/release/pgbox when built, else target/debug/pgbox (cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"
SECS="${2:-30}"
if [ -x target/release/pgbox ]; then PGBOX="$PWD/target/release/pgbox"; else
    cargo build --quiet
    PGBOX="$PWD/target/debug/pgbox"
fi
root=$(mktemp -d /tmp/pgbox-bench-cluster.XXXXXX)
cleanup() {
    for d in "$root"/*/; do (cd "$d" 2>/dev/null && "$PGBOX" down --purge --yes -q) || true; done
    rm -rf "$root"
}
trap cleanup EXIT
now() { date +%s.%N; }
free_port() {
    python3 - <<'PY'
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    try:
        for q in (p + 1, p + 2):
            t = socket.socket(); t.bind(("127.0.0.1", q)); t.close()
        print(p); break
    except OSError:
        pass
PY
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# Until a leader, every node running with no lag, and (synchronous) a sync standby.
wait_healthy() {
    local deadline=$((SECONDS + 240)) st
    while :; do
        st=$("$PGBOX" status --json 2>/dev/null || true)
        if [ -n "$st" ] && [ "$(printf '%s' "$st" | json "d['healthy'] and all(n['lag_bytes'] == 0 for n in d['nodes']) and (not d['synchronous'] or any(n['role'] == 'sync_standby' for n in d['nodes']))")" = True ]; then
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || { echo "cluster not healthy: $st" >&2; return 1; }
        sleep 0.5
    done
}

# One insert per connection through the multi-host URL (password in the environment);
# "id sent acknowledged" when acknowledged, "id" when the attempt failed (no server
# took the connection, or the statement failed or timed out: in doubt).
writer() {
    local url=$1 id=$2 acked=$3 doubt=$4 stop=$5 sent
    while [ ! -e "$stop" ]; do
        id=$((id + 1))
        sent=$(now)
        if timeout 3 psql -X -q "$url" -c "insert into ack(id) values ($id)" >/dev/null 2>&1; then
            echo "$id $sent $(now)" >>"$acked"
        else
            echo "$id" >>"$doubt"
        fi
    done
}

pgbench_tps() { # container user
    docker exec -u postgres "$1" pgbench -q -i -s 10 -U "$2" "$2" >/dev/null 2>&1
    docker exec -u postgres "$1" pgbench -c 4 -j 2 -T "$SECS" -U "$2" "$2" 2>/dev/null |
        awk '/^tps/ {printf "%.0f", $3; exit}'
}

declare -A TPS
for mode in single false true; do
    mkdir "$root/$mode" && cd "$root/$mode"
    name="bc$mode$$"
    "$PGBOX" init --yes -q --name "$name" --port "$(free_port)" >/dev/null
    if [ "$mode" != single ]; then
        printf '\n[cluster]\nreplicas = 2\nsynchronous = %s\n' "$mode" >>pgbox.toml
    fi
    "$PGBOX" up -q --timeout 300 >/dev/null
    export PGPASSWORD
    PGPASSWORD=$(cat .pgbox/secrets/postgres_password)
    if [ "$mode" = single ]; then
        TPS[$mode]=$(pgbench_tps "pgbox-$name" "$name")
        "$PGBOX" down --purge --yes -q
        continue
    fi
    wait_healthy
    url=$("$PGBOX" url)
    psql -X -q "$url" -c "create table ack(id bigint primary key, at timestamptz default now())"
    acked="$root/$mode/acked" doubt="$root/$mode/doubt"
    : >"$acked"
    : >"$doubt"
    times=()
    for round in $(seq "$ROUNDS"); do
        wait_healthy
        leader=$("$PGBOX" status --json | json "d['leader']")
        stop="$root/$mode/stop"
        rm -f "$stop"
        writer "$url" $((round * 1000000)) "$acked" "$doubt" "$stop" &
        wpid=$!
        sleep 2
        t0=$(now)
        docker kill "pgbox-$name-$leader" >/dev/null
        # Statements sent before the kill returned may still have reached the old leader.
        t1=$(now)
        first=""
        for _ in $(seq 900); do
            first=$(awk -v t0="$t0" -v t1="$t1" '$2 > t1 {print $3 - t0; exit}' "$acked")
            [ -z "$first" ] || break
            sleep 0.1
        done
        sleep 2
        touch "$stop"
        wait "$wpid" || true
        [ -n "$first" ] || { echo "round $round: no write within 90 s of the kill" >&2; exit 1; }
        times+=("$first")
        printf 'synchronous=%s round %s: killed %s, first write after %.1fs\n' "$mode" "$round" "$leader" "$first"
        "$PGBOX" up -q --timeout 300 >/dev/null
    done
    wait_healthy
    psql -X -qAt "$url" -c "select id from ack" | sort -n >"$root/$mode/stored"
    lost=$(cut -d' ' -f1 "$acked" | sort -n | comm -23 - "$root/$mode/stored" | wc -l)
    stats=$(printf '%s\n' "${times[@]}" | python3 -c "import sys,statistics as s; v=[float(x) for x in sys.stdin]; print(f'median {s.median(v):.1f}s max {max(v):.1f}s')")
    printf 'synchronous=%s: failover %s over %s kills; acknowledged %s, lost %s, failed attempts (in doubt or not sent) %s\n' \
        "$mode" "$stats" "$ROUNDS" "$(wc -l <"$acked")" "$lost" "$(wc -l <"$doubt")"
    leader=$("$PGBOX" status --json | json "d['leader']")
    TPS[$mode]=$(pgbench_tps "pgbox-$name-$leader" "$name")
    "$PGBOX" down --purge --yes -q
done
printf 'pgbench tps (scale 10, -c 4 -j 2 -T %s): single %s, cluster async %s, cluster sync %s\n' \
    "$SECS" "${TPS[single]}" "${TPS[false]}" "${TPS[true]}"
