#!/usr/bin/env bash
# pgbench with a new connection per transaction (`-C`), through the PgBouncer pooler
# and straight to the server, in one run on one project, and the ratio of the two.
# Both runs use SCRAM (no TLS) and come from the same helper container on the
# project network (the server's own image, for its pgbench), so only the path differs.
#
#   scripts/bench-pooler.sh [-b BIN] [-c CLIENTS] [-T SECONDS] [-s SCALE]
set -euo pipefail

bin=${PGBOX_BIN:-target/debug/pgbox}
clients=20
seconds=30
scale=10
while getopts b:c:T:s: o; do
    case $o in
    b) bin=$OPTARG ;;
    c) clients=$OPTARG ;;
    T) seconds=$OPTARG ;;
    s) scale=$OPTARG ;;
    *) echo "usage: $0 [-b BIN] [-c CLIENTS] [-T SECONDS] [-s SCALE]" >&2; exit 2 ;;
    esac
done
bin=$(realpath "$bin")

work=$(mktemp -d /tmp/pgbox-bench-pooler.XXXXXX)
name="benchpool$$"
cleanup() {
    (cd "$work" && "$bin" down --purge --yes -q >/dev/null 2>&1) || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cd "$work"
"$bin" init --yes -q --name "$name" --port "$(free_port)" >/dev/null
printf '\n[pooler]\nenabled = true\nport = %s\npool_size = %s\n' "$(free_port)" "$clients" >>pgbox.toml
"$bin" up -q >/dev/null

server="pgbox-$name"
db=${name//-/_}
image=$(docker inspect -f '{{.Config.Image}}' "$server")
umask 077
printf '*:*:*:%s:%s\n' "$db" "$(head -n 1 .pgbox/secrets/postgres_password)" >"$work/pgpass"
docker exec -u postgres "$server" pgbench -i -q -s "$scale" -U "$db" "$db" >/dev/null 2>&1

# TPS of one pgbench -C run against HOST:PORT.
tps() {
    docker run --rm --network "$server-net" -v "$work/pgpass:/pgpass:ro" -e PGPASSFILE=/pgpass \
        --entrypoint pgbench "$image" -n -C -S -c "$clients" -j 2 -T "$seconds" \
        -h "$1" -p "$2" -U "$db" "$db" 2>&1 |
        awk '/^tps = / {print $3}'
}

pooled=$(tps "$server-pooler" 6432)
direct=$(tps "$server" 5432)
echo "pgbench -C -S -c $clients -j 2 -T $seconds (scale $scale), SCRAM, no TLS"
echo "through the pooler: $pooled tps"
echo "direct:             $direct tps"
awk -v a="$pooled" -v b="$direct" 'BEGIN { printf "ratio:              %.1fx (target >= 3x)\n", a / b }'
