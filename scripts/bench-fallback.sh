#!/usr/bin/env bash
# Benchmark for the container side (issue: entrypoint and storage modes). Prints figures.
#
# On a pgbench database (scale 50 by default, about 755 MB):
#  - fallback mode: `pgbox save` (live, pg_basebackup | zstd) time and tarball size,
#    `pgbox down` (fast shutdown + save) and `pgbox up` (restore + start) times,
#    against `tar | gzip` and `gzip -dc | tar -x` of the same PGDATA, in one run
#  - direct mode: graceful shutdown and time to ready on the same data size
#  - the health check's own run time inside the container
# Usage: scripts/bench-fallback.sh [SCALE]   (needs an engine: scripts/ensure-engine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-50}"
cargo build --release --quiet
PGBOX="$PWD/target/release/pgbox"
root=$(mktemp -d /tmp/pgbox-bench.XXXXXX)
cleanup() {
    for d in "$root"/*/; do (cd "$d" && "$PGBOX" down --purge --yes -q) || true; done
    rm -rf "$root"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mb() { python3 -c "import sys; print(f'{int(sys.argv[1])/1e6:.0f} MB')" "$1"; }

load() { # name
    "$PGBOX" psql -q -c "select 1" >/dev/null
    docker exec -u postgres "pgbox-$1" sh -c "pgbench -q -i -s $SCALE -U \$POSTGRES_USER \$POSTGRES_DB" >/dev/null 2>&1
    docker exec -u postgres "pgbox-$1" psql -qAt -U postgres -d postgres -c "checkpoint" >/dev/null 2>&1 || true
}

# ---- fallback ----
mkdir "$root/fb" && cd "$root/fb"
"$PGBOX" init --yes -q --name "fb$$" --port "$(free_port)" --storage fallback
"$PGBOX" up -q >/dev/null
t0=$(now); load "fb$$"; echo "pgbench -i -s $SCALE loaded in $(since "$t0")s"
c="pgbox-fb$$"
size=$(docker exec "$c" sh -c 'du -sb /tmp/pgdata-ephemeral-$HOSTNAME' | cut -f1)
db=$(docker exec -u postgres "$c" sh -c 'psql -qAt -U $POSTGRES_USER -d $POSTGRES_DB -c "select pg_database_size(current_database())"')
echo "PGDATA: $(mb "$size"), database $(mb "$db")"

t0=$(now); "$PGBOX" save -q; save_t=$(since "$t0")
save_sz=$(stat -c %s .pgbox/data/pgsql.tar.zst)
echo "pgbox save (live, pg_basebackup | zstd -3): ${save_t}s, tarball $(mb "$save_sz")"

# Baseline: tar | gzip of the same PGDATA, inside the same container, to the same mount.
t0=$(now)
docker exec "$c" sh -c 'tar -C /tmp/pgdata-ephemeral-$HOSTNAME -cf - . | gzip > /var/lib/postgresql/data/baseline.tar.gz'
gz_t=$(since "$t0"); gz_sz=$(stat -c %s .pgbox/data/baseline.tar.gz)
echo "baseline tar | gzip: ${gz_t}s, $(mb "$gz_sz")"
t0=$(now)
docker exec "$c" sh -c 'rm -rf /tmp/unpack && mkdir /tmp/unpack && gzip -dc /var/lib/postgresql/data/baseline.tar.gz | tar -C /tmp/unpack -xf - && rm -rf /tmp/unpack /var/lib/postgresql/data/baseline.tar.gz'
gunz_t=$(since "$t0")
echo "baseline gzip -dc | tar -x: ${gunz_t}s"

t0=$(now); "$PGBOX" down -q; down_t=$(since "$t0")
down_sz=$(stat -c %s .pgbox/data/pgsql.tar.zst)
echo "fallback: pgbox down (fast shutdown + save): ${down_t}s, tarball $(mb "$down_sz")"
t0=$(now); "$PGBOX" up -q >/dev/null; up_t=$(since "$t0")
echo "fallback: pgbox up (restore + start to ready): ${up_t}s"
docker logs "$c" 2>/dev/null | grep -E "saved PGDATA|restored PGDATA|PostgreSQL stopped in" | tail -3 | sed 's/^/  entrypoint: /'
python3 - "$save_t" "$gz_t" "$save_sz" "$gz_sz" <<'PY'
import sys
st, gt, ss, gs = map(float, sys.argv[1:])
print(f"ratio save time tar|gzip / pgbox save: {gt/st:.2f}x; size pgbox / tar|gzip: {ss/gs:.2f}")
PY
hc=$(docker exec "$c" bash -c 'TIMEFORMAT=%R; time pgbox-healthcheck >/dev/null' 2>&1)
echo "health check run time inside the container: ${hc}s"
"$PGBOX" down -q

# ---- direct ----
mkdir "$root/dr" && cd "$root/dr"
"$PGBOX" init --yes -q --name "dr$$" --port "$(free_port)" --storage direct
"$PGBOX" up -q >/dev/null
load "dr$$"
t0=$(now); "$PGBOX" down -q; echo "direct: pgbox down (graceful shutdown): $(since "$t0")s"
t0=$(now); "$PGBOX" up -q >/dev/null; echo "direct: pgbox up (start to ready): $(since "$t0")s"
