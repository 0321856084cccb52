#!/usr/bin/env bash
# Issue #20's table from one fresh run, as ratios: pgbox against the floor of each
# operation, and Podman against Docker, on the same pgbench database.
#
#   scripts/bench.sh [-r ROUNDS] [-s SCALE] [-n STATUS_RUNS] [-R] [PGBOX]
#
# Every pair is measured interleaved (A, B, A, B, ...) ROUNDS times (default 3) and
# the medians are compared, so a busy machine slows both sides alike. PGBOX defaults
# to a fresh release build. Needs Docker and rootful Podman (scripts/ensure-engine.sh).
#
#   warm up to ready   `pgbox up` after `pgbox down`  vs  `docker start` + a 20 ms
#                      pg_isready loop on the published port (the floor)
#   backup             `pgbox backup`                 vs  in-container `pg_dump -Fc > /dev/null`
#   restore            `pgbox restore --into NEW` of pgbox's own backup (checks, scratch
#                      database, swap)  vs  in-container `pg_restore` of the same custom
#                      file, already in the container, into a fresh database, with the
#                      same -j and session settings (the floor)
#   Podman restart     `pgbox up` after `pgbox down` on Podman  vs  the same on Docker
#   Podman backup      `pgbox backup` on Podman                 vs  the same on Docker
#   status             median of STATUS_RUNS `pgbox status` on a running project vs 50 ms
#
# -R measures the restore pair only (Docker). With BENCH_TRACE=FILE, every timed
# restore appends its per-phase timings (PGBOX_TRACE) to FILE, and every floor run
# its CREATE DATABASE and pg_restore times.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 SCALE=10 STATUS_RUNS=10 ONLY_RESTORE=
while getopts r:s:n:R o; do
    case $o in
    R) ONLY_RESTORE=1 ;;
    r) ROUNDS=$OPTARG ;;
    s) SCALE=$OPTARG ;;
    n) STATUS_RUNS=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -ge 1 ]; then
    PGBOX=$(readlink -f "$1")
else
    cargo build --release --quiet
    PGBOX="$PWD/target/release/pgbox"
fi
root=$(mktemp -d /tmp/pgbox-bench.XXXXXX)
cleanup() {
    for e in docker podman; do (cd "$root/$e" 2>/dev/null && "$PGBOX" --engine "$e" down --purge --yes -q) || true; done
    rm -rf "$root"
}
trap cleanup EXIT
ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
# time_ms CMD...: wall time of CMD in ms (output discarded, failure fatal)
time_ms() {
    local t0
    t0=$(ms)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2; exit 1; }
    echo $(($(ms) - t0))
}

engines=(docker podman)
[ -z "$ONLY_RESTORE" ] || engines=(docker)
declare -A name port
for e in "${engines[@]}"; do
    mkdir "$root/$e"
    name[$e]="bench$e$$"
    port[$e]=$(free_port)
    (cd "$root/$e" && "$PGBOX" --engine "$e" init --yes -q --name "${name[$e]}" --port "${port[$e]}" --storage direct &&
        "$PGBOX" --engine "$e" up -q >/dev/null)
    "$e" exec -u postgres "pgbox-${name[$e]}" pgbench -q -i -s "$SCALE" -U "${name[$e]}" "${name[$e]}" >/dev/null 2>&1
    "$e" exec -u postgres "pgbox-${name[$e]}" psql -qAt -U "${name[$e]}" -d "${name[$e]}" -c "vacuum analyze" >/dev/null
done
pg() { cd "$root/$1" && "$PGBOX" --engine "$1" "${@:2}"; }
c=pgbox-${name[docker]} db=${name[docker]}
dpsql() { docker exec -u postgres "$c" psql -qAt -U "$db" -d postgres -c "$1"; }

# The floor of a warm start: the engine starts the container, a loop pings every 20 ms.
floor_start() {
    docker start "$c" >/dev/null
    until pg_isready -q -h 127.0.0.1 -p "${port[docker]}" -t 1 2>/dev/null; do sleep 0.02; done
}
restart() { pg "$1" down -q && time_ms pg "$1" up -q; }

up_floor=() up_podman=() up_docker=()
bk_floor=() bk_podman=() bk_docker=()
for _ in $(seq 1 "$([ -z "$ONLY_RESTORE" ] && echo "$ROUNDS" || echo 0)"); do
    up_docker+=("$(restart docker)")
    up_podman+=("$(restart podman)")
    pg docker down -q
    up_floor+=("$(time_ms floor_start)")
    # `docker start` alone leaves pgbox's readiness unproven; bring it up properly.
    pg docker down -q && pg docker up -q >/dev/null
    bk_docker+=("$(time_ms pg docker backup -q)")
    bk_podman+=("$(time_ms pg podman backup -q)")
    bk_floor+=("$(time_ms docker exec -u postgres "$c" sh -c "pg_dump -Fc -U '$db' '$db' > /dev/null")")
done
# shellcheck disable=SC2034 # read through namerefs in row()
up_pgbox=("${up_docker[@]}") bk_pgbox=("${bk_docker[@]}")

# Restore: pgbox's own backup, and the same custom-format file inside the container.
pg docker backup -q -o "$root/r.dump.zst" >/dev/null
jobs=$(($(nproc) > 1 ? $(nproc) - 1 : 1))
docker exec "$c" sh -c "rm -f /tmp/bench.dump" >/dev/null
zstd -dc "$root/r.dump.zst" | docker exec -i -u postgres "$c" sh -c "cat > /tmp/bench.dump"
opts="-c synchronous_commit=off -c wal_compression=off -c maintenance_work_mem=512MB"
trace() { [ -z "${BENCH_TRACE:-}" ] || echo "$*" >>"$BENCH_TRACE"; }
floor_restore() {
    local t0 t1
    t0=$(ms)
    dpsql "create database bench_floor owner \"$db\" template template0" >/dev/null
    t1=$(ms)
    docker exec -u postgres -e PGOPTIONS="$opts" "$c" pg_restore --exit-on-error --jobs "$jobs" -U "$db" -d bench_floor /tmp/bench.dump
    trace "floor create database $((t1 - t0)) ms, pg_restore $(($(ms) - t1)) ms"
}
pgbox_restore() {
    if [ -n "${BENCH_TRACE:-}" ]; then
        echo "pgbox restore --into $2" >>"$BENCH_TRACE"
        PGBOX_TRACE=1 pg docker restore -q --yes "$1" --into "$2" 2>>"$BENCH_TRACE"
    else
        pg docker restore -q --yes "$1" --into "$2"
    fi
}
rs_pgbox=() rs_floor=()
for i in $(seq 1 "$ROUNDS"); do
    dpsql checkpoint >/dev/null
    rs_pgbox+=("$(time_ms pgbox_restore "$root/r.dump.zst" "bench_pgbox_$i")")
    dpsql "drop database bench_pgbox_$i" >/dev/null
    dpsql checkpoint >/dev/null
    rs_floor+=("$(time_ms floor_restore)")
    dpsql "drop database bench_floor" >/dev/null
done
docker exec "$c" rm -f /tmp/bench.dump

row() { # what, pgbox ms list name, baseline ms list name, baseline label
    local -n a=$2 b=$3
    local ma mb
    ma=$(median "${a[@]}") mb=$(median "${b[@]}")
    awk -v w="$1" -v a="$ma" -v b="$mb" -v l="$4" \
        'BEGIN { printf "| %s | %.2f s | %s: %.2f s | %.2f× |\n", w, a/1000, l, b/1000, a/b }'
}
if [ -n "$ONLY_RESTORE" ]; then
    echo
    echo "pgbox bench: $(nproc) cores, $(date -u +%Y-%m-%d), pgbench scale $SCALE, medians of $ROUNDS interleaved rounds, restore only"
    echo
    row "restore, same dump (Docker, -j $jobs)" rs_pgbox rs_floor "in-container \`pg_restore -j $jobs\`, file inside, fresh database"
    echo "raw ms: restore pgbox ${rs_pgbox[*]} | floor ${rs_floor[*]}"
    exit 0
fi
st=()
for _ in $(seq 1 "$STATUS_RUNS"); do st+=("$(time_ms pg docker status)"); done
st_p=()
for _ in $(seq 1 "$STATUS_RUNS"); do st_p+=("$(time_ms pg podman status)"); done

echo
echo "pgbox bench: $(nproc) cores, $(date -u +%Y-%m-%d), pgbench scale $SCALE, medians of $ROUNDS interleaved rounds (status: $STATUS_RUNS runs)"
echo
echo "| what | pgbox | baseline in the same run | ratio |"
echo "|---|---|---|---|"
row "warm \`up\` to ready (Docker)" up_pgbox up_floor "\`docker start\` + 20 ms \`pg_isready\` loop"
row "backup (Docker)" bk_pgbox bk_floor "in-container \`pg_dump -Fc > /dev/null\`"
row "restore, same dump (Docker, -j $jobs)" rs_pgbox rs_floor "in-container \`pg_restore -j $jobs\`, file inside, fresh database"
row "Podman restart to ready" up_podman up_docker "Docker"
row "Podman backup" bk_podman bk_docker "Docker"
# shellcheck disable=SC2034 # read through a nameref in row()
goal=(50)
row "\`pgbox status\` (Docker)" st goal "goal"
row "\`pgbox status\` (Podman)" st_p goal "goal"
echo
echo "raw ms: up docker ${up_docker[*]} | floor ${up_floor[*]} | podman ${up_podman[*]}"
echo "        backup docker ${bk_docker[*]} | floor ${bk_floor[*]} | podman ${bk_podman[*]}"
echo "        restore pgbox ${rs_pgbox[*]} | floor ${rs_floor[*]}"
echo "        status docker ${st[*]} | podman ${st_p[*]}"
