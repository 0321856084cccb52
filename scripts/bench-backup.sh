#!/usr/bin/env bash
# Benchmark for backup and restore (issue: backup/restore). Prints figures and ratios.
#
# On a pgbench database (scale 50 by default, about 755 MB), in one run:
#  backup:  1. pgbox backup (custom format, zstd inside the container)
#           2. docker exec <c> pg_dump <db> | gzip > f.sql.gz   (the common way)
#           3. in-container pg_dump -Fc <db> > /dev/null          (the floor)
#  restore: pgbox restore (scratch database, pg_restore -j) against
#           gunzip < f.sql.gz | docker exec -i <c> psql
#  and the peak RSS of the pgbox process during backup and restore (/usr/bin/time -v).
# Usage: scripts/bench-backup.sh [SCALE]   (needs an engine: scripts/ensure-engine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-50}"
cargo build --release --quiet
PGBOX="$PWD/target/release/pgbox"
work=$(mktemp -d /tmp/pgbox-bench.XXXXXX)
cleanup() { (cd "$work" && "$PGBOX" down --purge --yes -q) || true; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
mb() { python3 -c "import sys; print(f'{int(sys.argv[1])/1e6:.1f} MB')" "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f MB", $2/1024}' "$1"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cd "$work"
name="bk$$"
"$PGBOX" init --yes -q --name "$name" --port "$port" --storage direct
"$PGBOX" up -q >/dev/null
c="pgbox-$name"
db="$name"
docker exec -u postgres "$c" pgbench -q -i -s "$SCALE" -U "$db" "$db" >/dev/null 2>&1
docker exec -u postgres "$c" psql -qAt -U "$db" -d "$db" -c "vacuum analyze" >/dev/null
echo "database: $(mb "$(docker exec -u postgres "$c" psql -qAt -U "$db" -d "$db" -c "select pg_database_size('$db')")")"

# 1. pgbox backup
t0=$(now)
/usr/bin/time -v -o time-backup.txt "$PGBOX" backup -q -o "$work/b.dump.zst" >/dev/null
t1=$(since "$t0"); s1=$(stat -c %s "$work/b.dump.zst")
echo "1. pgbox backup:                         ${t1}s  $(mb "$s1")  peak RSS $(rss time-backup.txt)"
# 2. the common way
t0=$(now)
docker exec "$c" pg_dump -U "$db" "$db" | gzip >"$work/f.sql.gz"
t2=$(since "$t0"); s2=$(stat -c %s "$work/f.sql.gz")
echo "2. docker exec pg_dump | gzip (host):    ${t2}s  $(mb "$s2")"
# 3. the floor
t0=$(now)
docker exec -u postgres "$c" sh -c "pg_dump -Fc -U '$db' '$db' > /dev/null"
t3=$(since "$t0")
echo "3. in-container pg_dump -Fc > /dev/null: ${t3}s"
python3 - "$t1" "$t2" "$t3" "$s1" "$s2" <<'PY'
import sys
t1, t2, t3, s1, s2 = map(float, sys.argv[1:])
print(f"pgbox / floor: {t1/t3:.2f}x (target <= 1.2)   common way / pgbox: {t2/t1:.2f}x faster (target >= 2.5)   size pgbox / common way: {s1/s2:.2f} (target <= 1)")
PY

# Restore: pgbox restore into a new database, against gunzip | psql into another.
# A checkpoint before each, so neither pays for the other's (or the load's) dirty pages.
checkpoint() { docker exec -u postgres "$c" psql -qAt -U "$db" -d postgres -c checkpoint >/dev/null; }
checkpoint
t0=$(now)
/usr/bin/time -v -o time-restore.txt "$PGBOX" restore -q "$work/b.dump.zst" --into restored_pgbox >/dev/null
r1=$(since "$t0")
echo "pgbox restore (pg_restore -j, scratch + swap): ${r1}s  peak RSS $(rss time-restore.txt)"
docker exec -u postgres "$c" psql -qAt -U "$db" -d postgres -c "create database restored_psql" >/dev/null
checkpoint
t0=$(now)
gunzip <"$work/f.sql.gz" | docker exec -i -u postgres "$c" psql -q -U "$db" -d restored_psql >/dev/null
r2=$(since "$t0")
echo "gunzip | docker exec -i psql:                  ${r2}s"
python3 - "$r1" "$r2" <<'PY'
import sys
r1, r2 = map(float, sys.argv[1:])
print(f"restore: gunzip|psql / pgbox: {r2/r1:.2f}x faster (target >= 1.3)")
PY
