#!/usr/bin/env bash
# Binary size and the wall time of `pgbox status` and `pgbox url` on a running
# project, for one or more pgbox binaries in one run (e.g. before and after a
# change): each binary gets its own project, brought up once, then N timed runs
# of each command; the medians and the ratios to the first binary are printed.
#
#   scripts/bench-status.sh [-n RUNS] BIN [BIN...]
set -euo pipefail

runs=10
if [ "${1:-}" = -n ]; then
    runs=$2
    shift 2
fi
[ "$#" -ge 1 ] || { echo "usage: $0 [-n RUNS] BIN [BIN...]" >&2; exit 2; }

work=$(mktemp -d /tmp/pgbox-bench-status.XXXXXX)
projects=()
cleanup() {
    for d in "${projects[@]}"; do
        (cd "$d" && "$(cat "$d/.bin")" down --purge --yes -q >/dev/null 2>&1) || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Median wall time in milliseconds of `BIN ARGS` run $runs times in $dir.
median_ms() {
    local dir=$1 bin=$2
    shift 2
    local t=() s e
    for _ in $(seq 1 "$runs"); do
        s=$(date +%s%N)
        (cd "$dir" && "$bin" "$@" >/dev/null 2>&1)
        e=$(date +%s%N)
        t+=($(((e - s) / 1000)))
    done
    printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m/1000}'
}

printf '%-40s %12s %12s %12s\n' binary size_bytes status_ms url_ms
first_size="" first_status="" first_url=""
n=0
for bin in "$@"; do
    bin=$(readlink -f "$bin")
    n=$((n + 1))
    dir="$work/p$n"
    mkdir -p "$dir"
    echo "$bin" >"$dir/.bin"
    projects+=("$dir")
    (cd "$dir" && "$bin" init --yes -q --name "bench-status-$$-$n" --port "$(free_port)" >/dev/null &&
        "$bin" up -q >/dev/null)
    size=$(stat -c %s "$bin")
    st=$(median_ms "$dir" "$bin" status)
    url=$(median_ms "$dir" "$bin" url)
    printf '%-40s %12s %12s %12s\n' "$bin" "$size" "$st" "$url"
    if [ -z "$first_size" ]; then
        first_size=$size first_status=$st first_url=$url
    else
        awk -v a="$size" -v b="$first_size" -v c="$st" -v d="$first_status" -v e="$url" -v f="$first_url" \
            'BEGIN { printf "  ratio to the first: size %.2fx, status %.2fx, url %.2fx\n", a/b, c/d, e/f }'
    fi
done
