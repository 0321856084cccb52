#!/bin/bash
# runtime/healthcheck.sh: the engine's health check, well under a second.
# Healthy when the entrypoint reports RUNNING, the postmaster process lives,
# PostgreSQL accepts a TCP connection on 127.0.0.1, and the data location has at
# least PGBOX_DISK_MIN_MB (100) MB free.
set -u
PGBOX_LIB="${PGBOX_LIB:-/usr/local/lib/pgbox}"
MODULE=healthcheck
# shellcheck source=runtime/common.sh
source "$PGBOX_LIB/runtime/common.sh"

state=$(current_state)
[ "$state" = RUNNING ] || { echo "state is $state"; exit 1; }
pid=$(postmaster_pid)
if [ -z "$pid" ] || ! alive "$pid"; then
    echo "postmaster is not running"
    exit 1
fi
port=${PGPORT:-5432} # a node's own port where nodes share a kube pod
pg_isready --host=127.0.0.1 --port="$port" --timeout=1 --quiet || { echo "no TCP connection on 127.0.0.1:$port"; exit 1; }
min=${PGBOX_DISK_MIN_MB:-100}
for dir in "$PGDATA" "$PGBOX_MOUNT"; do
    free=$(df -Pm "$dir" | awk 'NR==2 {print $4}')
    if [ "$free" -lt "$min" ]; then
        echo "only ${free} MB free on $dir (minimum ${min} MB)"
        exit 1
    fi
done
echo "healthy"
