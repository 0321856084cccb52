#!/usr/bin/env bash
# pgbench with a new connection per transaction (`-C`), through the PgBouncer pooler
# and straight to the server, in one run on one project, and the ratio of the two.
# Both runs use SCRAM (no TLS) and come from the same client container on the
# project network (the server's own image, for its pgbench), so only the path differs.
# The runs alternate (pooled, direct, pooled, direct…) and the medians are compared.
#
# Besides TPS it prints the CPU each container spent per transaction (from the
# engine's cgroups): the client's, the server's and the pooler's. On a small machine
# the client shares the cores with the server, and every new connection costs the
# client SCRAM's key derivation (PBKDF2, 4096 rounds of HMAC-SHA-256 by default) in
# both runs alike. A second pass repeats the pair as a benchmark-only role
# whose SCRAM verifier has 1 round, so the client's share shrinks to what a client on
# its own machine would take from the server's cores. Nothing of the project changes:
# the role is made here, with a verifier computed here, and dropped with the project.
#
# `-K` skips the second pass.
#
#   scripts/bench-pooler.sh [-b BIN] [-c CLIENTS] [-T SECONDS] [-s SCALE] [-r ROUNDS] [-K]
set -euo pipefail

bin=${PGBOX_BIN:-target/debug/pgbox}
clients=20
seconds=15
scale=10
rounds=2
kdf_pass=1
while getopts b:c:T:s:r:K o; do
    case $o in
    b) bin=$OPTARG ;;
    c) clients=$OPTARG ;;
    T) seconds=$OPTARG ;;
    s) scale=$OPTARG ;;
    r) rounds=$OPTARG ;;
    K) kdf_pass=0 ;;
    *)
        echo "usage: $0 [-b BIN] [-c CLIENTS] [-T SECONDS] [-s SCALE] [-r ROUNDS] [-K]" >&2
        exit 2
        ;;
    esac
done
bin=$(realpath "$bin")

work=$(mktemp -d /tmp/pgbox-bench-pooler.XXXXXX)
name="benchpool$$"
client="pgbox-$name-benchclient"
cleanup() {
    docker rm -f "$client" >/dev/null 2>&1 || true
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

if [ "$kdf_pass" = 1 ]; then
    # The benchmark-only role: a random password, its verifier with 1 round, sent
    # on psql's stdin (never an argument), read access to the pgbench tables only.
    fast_pw=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
    printf '*:*:*:pgbox_bench_fastkdf:%s\n' "$fast_pw" >>"$work/pgpass"
    # shellcheck disable=SC2016 # the Python source is meant literally
    verifier=$(FAST_PW="$fast_pw" python3 -c '
import base64, hashlib, hmac, os
pw = os.environ["FAST_PW"].encode()
salt = os.urandom(16)
salted = hashlib.pbkdf2_hmac("sha256", pw, salt, 1)
ck = hmac.new(salted, b"Client Key", "sha256").digest()
sk = hmac.new(salted, b"Server Key", "sha256").digest()
b = lambda x: base64.b64encode(x).decode()
print(f"SCRAM-SHA-256$1:{b(salt)}${b(hashlib.sha256(ck).digest())}:{b(sk)}")')
    docker exec -i -u postgres "$server" psql -q -v ON_ERROR_STOP=1 -U "$db" -d "$db" >/dev/null <<SQL
CREATE ROLE pgbox_bench_fastkdf LOGIN PASSWORD '$verifier';
GRANT SELECT ON pgbench_accounts, pgbench_branches TO pgbox_bench_fastkdf;
SQL
fi

# The client: one long-lived container; each pgbench is an exec in it, so its
# cgroup holds the client's CPU and nothing else.
docker run -d --name "$client" --network "$server-net" -v "$work/pgpass:/pgpass:ro" \
    -e PGPASSFILE=/pgpass --entrypoint sleep "$image" infinity >/dev/null

# CPU nanoseconds a container has used (cgroup v1 or v2); empty if unknown.
cpu_ns() {
    local id
    id=$(docker inspect -f '{{.Id}}' "$1")
    if [ -r "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" ]; then
        cat "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage"
    elif [ -r "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat" ]; then
        awk '/^usage_usec/ {print $2 * 1000}' "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat"
    fi
}

# One pgbench -C run against HOST PORT as USER: prints "tps client_ms server_ms pooler_ms".
run() {
    local c0 s0 p0 c1 s1 p1 out
    c0=$(cpu_ns "$client") s0=$(cpu_ns "$server") p0=$(cpu_ns "$server-pooler")
    out=$(docker exec "$client" pgbench -n -C -S -c "$clients" -j 2 -T "$seconds" \
        -h "$1" -p "$2" -U "$3" "$db" 2>&1)
    c1=$(cpu_ns "$client") s1=$(cpu_ns "$server") p1=$(cpu_ns "$server-pooler")
    awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v p0="$p0" -v p1="$p1" '
        /^tps = / { tps = $3 }
        /number of transactions actually processed/ { split($NF, a, "/"); n = a[1] }
        END {
            if (tps == "" || n == 0) { print "pgbench failed" > "/dev/stderr"; exit 1 }
            if (c0 == "") printf "%s - - -\n", tps
            else printf "%s %.3f %.3f %.3f\n", tps, (c1 - c0) / n / 1e6, (s1 - s0) / n / 1e6, (p1 - p0) / n / 1e6
        }' <<<"$out" || { echo "$out" >&2; exit 1; }
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# The mean client, server and pooler CPU per transaction of some `run` rows.
means() { printf '%s\n' "$@" | awk '{c += $2; s += $3; p += $4} END {print c / NR, s / NR, p / NR}'; }

# Alternate the two paths ROUNDS times as USER and print one block.
pair() {
    local user=$1 label=$2 i pooled=() direct=()
    for ((i = 0; i < rounds; i++)); do
        pooled+=("$(run "$server-pooler" 6432 "$user")")
        direct+=("$(run "$server" 5432 "$user")")
    done
    local pt dt pc ps pp dc ds dp
    pt=$(printf '%s\n' "${pooled[@]}" | cut -d' ' -f1 | median)
    dt=$(printf '%s\n' "${direct[@]}" | cut -d' ' -f1 | median)
    read -r pc ps pp <<<"$(means "${pooled[@]}")"
    read -r dc ds dp <<<"$(means "${direct[@]}")"
    echo "$label"
    # With every core busy, TPS is cores / total CPU per transaction, the client's
    # included: the last line is the ratio no pooler can pass while the client
    # shares the cores.
    awk -v pt="$pt" -v dt="$dt" -v pc="$pc" -v ps="$ps" -v pp="$pp" -v dc="$dc" -v ds="$ds" -v dp="$dp" 'BEGIN {
        printf "  %-20s %9s  %9s %9s %9s   (median TPS; mean CPU per transaction)\n", "", "tps", "client", "server", "pooler"
        printf "  %-20s %9.0f  %6.3f ms %6.3f ms %6.3f ms\n", "pooled", pt, pc, ps, pp
        printf "  %-20s %9.0f  %6.3f ms %6.3f ms %6.3f ms\n", "direct", dt, dc, ds, dp
        printf "  ratio pooled/direct  %.2fx (target >= 3x)\n", pt / dt
        if (ps + pp > 0) {
            printf "  server side (server + pooler) CPU per transaction: direct %.3f ms, pooled %.3f ms: %.1fx less\n", ds + dp, ps + pp, (ds + dp) / (ps + pp)
            printf "  all CPU per transaction, client included: direct %.3f ms, pooled %.3f ms: a %.1fx ceiling for the ratio on shared cores\n", dc + ds + dp, pc + ps + pp, (dc + ds + dp) / (pc + ps + pp)
        }
    }'
}

echo "pgbench -C -S -c $clients -j 2 -T $seconds (scale $scale), SCRAM, no TLS, $rounds rounds each, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
pair "$db" "as the project's role (SCRAM, 4096 rounds):"
if [ "$kdf_pass" = 1 ]; then
    pair pgbox_bench_fastkdf "as a benchmark-only role whose verifier has 1 round (the client's key derivation out of the way):"
fi
