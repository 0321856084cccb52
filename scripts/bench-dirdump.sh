#!/usr/bin/env bash
# Peak RSS of `pgbox restore` of an unpacked directory dump (issue #11): the folder
# is packed into a tar on the fly and streamed into the container, so pgbox's memory
# must not grow with the dump.
#
# On a pgbench database (scale 50 by default, about 755 MB): `pgbox backup --format
# directory --compress none -o DIR`, unpack the `.dir.tar` into a folder, then
# `pgbox restore FOLDER --into NEW` under /usr/bin/time -v.
# Usage: scripts/bench-dirdump.sh [SCALE]   (PGBOX=path/to/pgbox to measure another
# build; default: a debug build of this tree. Needs an engine: scripts/ensure-engine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-50}"
if [ -z "${PGBOX:-}" ]; then
    cargo build --quiet
    PGBOX="$PWD/target/debug/pgbox"
fi
work=$(mktemp -d /tmp/pgbox-bench-dir.XXXXXX)
cleanup() { (cd "$work" && "$PGBOX" down --purge --yes -q) || true; rm -rf "$work"; }
trap cleanup EXIT
mb() { python3 -c "import sys; print(f'{int(sys.argv[1])/1e6:.1f} MB')" "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f MB", $2/1024}' "$1"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cd "$work"
name="bd$$"
"$PGBOX" init --yes -q --name "$name" --port "$port" --storage direct
"$PGBOX" up -q >/dev/null
c="pgbox-$name"
db="$name"
docker exec -u postgres "$c" pgbench -q -i -s "$SCALE" -U "$db" "$db" >/dev/null 2>&1
echo "database: $(mb "$(docker exec -u postgres "$c" psql -qAt -U "$db" -d "$db" -c "select pg_database_size('$db')")")"

mkdir out dump
"$PGBOX" backup -q --format directory --compress none -o "$work/out" >/dev/null
tar -xf out/*.dir.tar -C dump
echo "directory dump: $(mb "$(du -sb dump | cut -f1)")"
/usr/bin/time -v -o time-restore.txt "$PGBOX" restore -q "$work/dump" --into restored_dir --yes >/dev/null
echo "pgbox restore of the unpacked folder: $(awk -F': ' '/Elapsed/ {print $2}' time-restore.txt)  peak RSS $(rss time-restore.txt)"
