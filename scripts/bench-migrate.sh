#!/usr/bin/env bash
# Benchmark for `pgbox migrate` (issue #15): the time to apply 200 small migrations,
# pgbox (its snapshot included) against dbmate doing the same, in one run.
#
# One pgbox project; the same 200 dbmate-format files (`-- migrate:up`/`-- migrate:down`,
# a table and a row each) are applied, in ROUNDS alternating rounds, by:
#   1. pgbox migrate up                 (project database, template-copy snapshot first)
#   2. pgbox migrate up --no-snapshot   (project database)
#   3. dbmate up --no-dump-schema       (a database of its own on the same server)
# each into an empty database. Prints each time, the medians and the ratios.
# dbmate comes from npm (the `dbmate` package ships its binary), installed once into
# DBMATE_DIR (default /opt/pgbox-bench/dbmate).
# Usage: scripts/bench-migrate.sh [ROUNDS]   (needs an engine: scripts/ensure-engine.sh, and npm)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
N=200
DBMATE_DIR="${DBMATE_DIR:-/opt/pgbox-bench/dbmate}"
command -v npm >/dev/null || { echo "npm is needed to install dbmate (apt-get install npm)" >&2; exit 1; }
if [ ! -x "$DBMATE_DIR/node_modules/.bin/dbmate" ]; then
    mkdir -p "$DBMATE_DIR"
    npm install --silent --no-audit --no-fund --prefix "$DBMATE_DIR" dbmate >/dev/null
fi
DBMATE="$DBMATE_DIR/node_modules/.bin/dbmate"
echo "dbmate: $("$DBMATE" --version)"
cargo build --release --quiet
PGBOX="$PWD/target/release/pgbox"
work=$(mktemp -d /tmp/pgbox-bench-migrate.XXXXXX)
cleanup() { (cd "$work" && "$PGBOX" down --purge --yes -q) || true; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.3f}')" "$1" "$(now)"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cd "$work"
name="mg$$"
"$PGBOX" init --yes -q --name "$name" --port "$port"
"$PGBOX" up -q >/dev/null
db="$name"
mkdir migrations
for i in $(seq 1 "$N"); do
    printf -- '-- migrate:up\ncreate table t_%d (id int primary key, note text);\ninsert into t_%d values (1, %s);\n\n-- migrate:down\ndrop table t_%d;\n' \
        "$i" "$i" "'row $i'" "$i" >"migrations/$((20260101000000 + i))_step_$i.sql"
done
sql() { "$PGBOX" psql --db postgres -qAt -c "$1" >/dev/null; }
# The password reaches dbmate through its environment only (never an argument).
password=$(cat .pgbox/secrets/postgres_password)
export DATABASE_URL="postgres://$db:$password@127.0.0.1:$port/dbmate_bench?sslmode=disable"

declare -a T1 T2 T3
for r in $(seq 1 "$ROUNDS"); do
    sql "drop database if exists \"$db\" with (force)"
    sql "create database \"$db\" owner \"$db\""
    t0=$(now); env -u DATABASE_URL "$PGBOX" migrate up -q; T1+=("$(since "$t0")")

    sql "drop database if exists \"$db\" with (force)"
    sql "create database \"$db\" owner \"$db\""
    t0=$(now); env -u DATABASE_URL "$PGBOX" migrate up -q --no-snapshot; T2+=("$(since "$t0")")

    sql "drop database if exists dbmate_bench with (force)"
    sql "create database dbmate_bench owner \"$db\""
    t0=$(now); "$DBMATE" --migrations-dir migrations --no-dump-schema up >/dev/null; T3+=("$(since "$t0")")
    echo "round $r: pgbox ${T1[-1]}s   pgbox --no-snapshot ${T2[-1]}s   dbmate ${T3[-1]}s"
done
applied=$("$PGBOX" psql -qAt -c "select count(*) from pgbox.schema_version")
[ "$applied" = "$N" ] || { echo "pgbox recorded $applied migrations, not $N" >&2; exit 1; }
python3 - "${T1[*]}" "${T2[*]}" "${T3[*]}" "$N" <<'PY'
import statistics, sys
t1, t2, t3 = (statistics.median(map(float, a.split())) for a in sys.argv[1:4])
n = sys.argv[4]
print(f"{n} migrations, medians: pgbox (with snapshot) {t1:.2f}s, pgbox --no-snapshot {t2:.2f}s, dbmate {t3:.2f}s")
print(f"dbmate / pgbox: {t3/t1:.2f}x (target >= 1: pgbox no slower, snapshot included); dbmate / pgbox --no-snapshot: {t3/t2:.2f}x")
PY
