#!/usr/bin/env bash
# Benchmark for Podman parity: time to ready (first start and restart) and backup time
# on Docker and on rootful Podman, in one run, on the same pgbench database.
# Usage: scripts/bench-engines.sh [SCALE]   (needs scripts/ensure-engine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-10}"
cargo build --release --quiet
PGBOX="$PWD/target/release/pgbox"
root=$(mktemp -d /tmp/pgbox-bench.XXXXXX)
cleanup() {
    for e in docker podman; do (cd "$root/$e" 2>/dev/null && "$PGBOX" --engine "$e" down --purge --yes -q) || true; done
    rm -rf "$root"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

results=()
for e in docker podman; do
    mkdir "$root/$e" && cd "$root/$e"
    name="be$e$$"
    "$PGBOX" --engine "$e" init --yes -q --name "$name" --port "$(free_port)" --storage direct
    t0=$(now); "$PGBOX" --engine "$e" up -q >/dev/null; first=$(since "$t0")
    "$PGBOX" --engine "$e" down -q
    t0=$(now); "$PGBOX" --engine "$e" up -q >/dev/null; again=$(since "$t0")
    "$e" exec -u postgres "pgbox-$name" pgbench -q -i -s "$SCALE" -U "$name" "$name" >/dev/null 2>&1
    t0=$(now); "$PGBOX" --engine "$e" backup -q >/dev/null; backup=$(since "$t0")
    printf '%-7s first start %ss  restart %ss  backup (pgbench scale %s) %ss\n' "$e" "$first" "$again" "$SCALE" "$backup"
    results+=("$again" "$backup")
done
python3 -c "import sys; a,b,c,d=map(float,sys.argv[1:]); print(f'podman/docker: restart {c/a:.2f}x, backup {d/b:.2f}x')" "${results[@]}"
