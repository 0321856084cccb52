#!/bin/bash
# pgbox health check: healthy only when the entrypoint reports RUNNING and
# PostgreSQL accepts a TCP connection on 127.0.0.1. Runs in well under a second.
set -u
[ "$(cat /tmp/container-state 2>/dev/null)" = RUNNING ] || exit 1
exec pg_isready --host=127.0.0.1 --port=5432 --timeout=1 --quiet
