#!/usr/bin/env bash
# Benchmark for off-site, encrypted backups (issue #14). Prints figures and ratios.
#
# On a pgbench database (scale 50 by default, about 755 MB), against a local S3
# server (moto, from scripts/ensure-s3.sh) on 127.0.0.1, in one run:
#  1. pgbox backup --local-only        (dump into the backup folder: the local cost)
#  2. pgbox backup                     (the same, verified, then encrypted to an age
#                                       recipient, uploaded multipart, read back and
#                                       hashed, manifest written)
#  3. pgbox backup --remote-only       (streamed from the container, encrypted,
#                                       uploaded, read back; no local copy)
#  4. by hand: docker exec pg_dump -Fc | age -r KEY | boto3 upload_fileobj
#     (the nearest equivalent of `pg_dump | gzip | gpg | aws s3 cp -` here: pg_dump's
#     own compression, Debian's age, boto3 from the moto venv; no check of any kind)
#  5. pgbox restore --from-remote latest --identity KEY  (download, decrypt, restore)
# and the peak RSS of each pgbox run (/usr/bin/time -v; target under 30 MB).
# pgbench data compresses about 160 to 1 with zstd, so the upload is small; RANDOM_MB
# (second argument) adds a table of that many MiB of random bytes, which no
# compressor shrinks, to measure memory and speed of a large upload.
# Usage: scripts/bench-offsite.sh [SCALE] [RANDOM_MB]
#   (needs an engine: scripts/ensure-engine.sh, and moto: scripts/ensure-s3.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-50}"
RANDOM_MB="${2:-0}"
VENV="${PGBOX_MOTO_VENV:-/opt/pgbox-test/moto}"
[ -x "$VENV/bin/moto_server" ] || { echo "moto is missing: run bash scripts/ensure-s3.sh" >&2; exit 1; }
command -v age >/dev/null || { echo "age is missing: run bash scripts/ensure-s3.sh" >&2; exit 1; }
cargo build --release --quiet
PGBOX="$PWD/target/release/pgbox"
HELPER="$PWD/tests/it/s3_helper.py"
work=$(mktemp -d /tmp/pgbox-bench-offsite.XXXXXX)
moto_pid=""
cleanup() {
    (cd "$work" && "$PGBOX" down --purge --yes -q) || true
    if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
mb() { python3 -c "import sys; print(f'{int(sys.argv[1])/1e6:.1f} MB')" "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f MB", $2/1024}' "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The S3 server, with authentication on, and its key.
s3port=$(free_port)
endpoint="http://127.0.0.1:$s3port"
INITIAL_NO_AUTH_ACTION_COUNT=3 "$VENV/bin/moto_server" -H 127.0.0.1 -p "$s3port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null && break; sleep 0.1; done
read -r key_id secret < <(AWS_ACCESS_KEY_ID=setup AWS_SECRET_ACCESS_KEY=setup \
    "$VENV/bin/python" "$HELPER" setup "$endpoint" bench)
export AWS_ACCESS_KEY_ID="$key_id" AWS_SECRET_ACCESS_KEY="$secret"

cd "$work"
age-keygen -o "$work/key.txt" 2>/dev/null
chmod 600 "$work/key.txt"
recipient=$(age-keygen -y "$work/key.txt")
name="off$$"
port=$(free_port)
"$PGBOX" init --yes -q --name "$name" --port "$port" --storage direct
python3 - "$recipient" "$endpoint" <<'PY'
import sys
r, ep = sys.argv[1:]
s = open("pgbox.toml").read()
s = s.replace("[backup]\n", f'[backup]\nencrypt_to = ["{r}"]\n', 1)
s += f'\n[backup.remote]\nurl = "s3://bench/pg"\nendpoint = "{ep}"\npath_style = true\n'
open("pgbox.toml", "w").write(s)
PY
"$PGBOX" up -q >/dev/null
c="pgbox-$name"
db="$name"
docker exec -u postgres "$c" pgbench -q -i -s "$SCALE" -U "$db" "$db" >/dev/null 2>&1
if [ "$RANDOM_MB" -gt 0 ]; then
    docker exec -u postgres "$c" psql -qAt -U "$db" -d "$db" -c "set client_min_messages = warning; create extension if not exists pgcrypto; create table noise as select (select string_agg(gen_random_bytes(1024), ''::bytea) from generate_series(1, 16) where g > 0) b from generate_series(1, $((RANDOM_MB * 64))) g" >/dev/null
fi
docker exec -u postgres "$c" psql -qAt -U "$db" -d "$db" -c "vacuum analyze" >/dev/null
echo "database: $(mb "$(docker exec -u postgres "$c" psql -qAt -U "$db" -d "$db" -c "select pg_database_size('$db')")") (pgbench scale $SCALE, $RANDOM_MB MiB random bytes)"

T="" R=""
run() { # time file, pgbox args...; sets T (seconds) and R (peak RSS)
    local tf=$1; shift
    local t0; t0=$(now)
    /usr/bin/time -v -o "$tf" "$PGBOX" "$@" -q >/dev/null
    T=$(since "$t0"); R=$(rss "$tf")
}
run time-local.txt backup --local-only; t1=$T r1=$R
local_files=(backups/*.dump.zst)
size1=$(stat -c %s "${local_files[0]}")
echo "1. pgbox backup --local-only:            ${t1}s  $(mb "$size1")  peak RSS $r1"
run time-ship.txt backup; t2=$T r2=$R
echo "2. pgbox backup (verify, age, upload):   ${t2}s  peak RSS $r2"
run time-stream.txt backup --remote-only; t3=$T r3=$R
echo "3. pgbox backup --remote-only:           ${t3}s  peak RSS $r3"
t0=$(now)
docker exec -u postgres "$c" pg_dump -Fc -U "$db" "$db" | age -r "$recipient" |
    "$VENV/bin/python" -c 'import boto3, sys
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").upload_fileobj(sys.stdin.buffer, "bench", "hand/dump.age")' "$endpoint"
t4=$(since "$t0")
size4=$("$VENV/bin/python" -c 'import boto3, sys
print(boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").head_object(Bucket="bench", Key="hand/dump.age")["ContentLength"])' "$endpoint")
echo "4. by hand: pg_dump -Fc | age | boto3:   ${t4}s  $(mb "$size4") (no verify, no read-back)"
run time-restore.txt restore --from-remote latest --identity "$work/key.txt" --into restored --yes; t5=$T r5=$R
echo "5. pgbox restore --from-remote (age):    ${t5}s  peak RSS $r5"
python3 - "$t1" "$t2" "$t3" "$t4" "$size1" "$size4" <<'PY'
import sys
t1, t2, t3, t4, s1, s4 = map(float, sys.argv[1:])
print(f"shipping cost: pgbox backup / --local-only {t2/t1:.2f}x; --remote-only / --local-only {t3/t1:.2f}x")
print(f"pgbox backup / by hand {t2/t4:.2f}x; --remote-only / by hand {t3/t4:.2f}x; size pgbox / by hand {s1/s4:.2f}")
PY
