#!/bin/bash
# pgbox container entrypoint: prepares PGDATA, initialises the cluster on first start,
# runs PostgreSQL as the postgres user and shuts it down cleanly on SIGTERM.
#
# Contract with pgbox (all set on the container, none of them secret):
#   PGDATA                  data directory (a bind mount or a named volume)
#   POSTGRES_USER           superuser created by initdb
#   POSTGRES_DB             database created on first start
#   POSTGRES_PASSWORD_FILE  file holding the password (a read-only secret mount)
#   PGBOX_SHUTDOWN_TIMEOUT  seconds for the fast shutdown before an immediate one (30)
# Progress goes to stdout as `<time> <LEVEL> <module>: <message>`; the line
# `state=RUNNING` tells pgbox that PostgreSQL accepts TCP connections.
# Exit codes: 0 clean stop, 1 internal error, 2 bad configuration, 3 storage or
# permission problem, 4 PostgreSQL failed.
set -Eeuo pipefail

readonly STATE_FILE=/tmp/container-state
readonly SHUTDOWN_TIMEOUT="${PGBOX_SHUTDOWN_TIMEOUT:-30}"
MODULE=entrypoint

log() {
    local level=$1
    shift
    printf '%s %-5s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$level" "$MODULE" "$*"
}

set_state() {
    printf '%s\n' "$1" >"$STATE_FILE"
    log INFO "state=$1${2:+ ($2)}"
}

fail() {
    local code=$1
    shift
    set_state ERROR "$*"
    log ERROR "$*"
    exit "$code"
}

# Seconds since an $EPOCHREALTIME value, with milliseconds.
elapsed() {
    local now=${EPOCHREALTIME/./} then=${1/./}
    local ms=$(((now - then) / 1000))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

as_postgres() {
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
}

validate() {
    MODULE=validation
    [ -n "${POSTGRES_USER:-}" ] || fail 2 "POSTGRES_USER is not set"
    [ -n "${POSTGRES_DB:-}" ] || fail 2 "POSTGRES_DB is not set"
    [ -n "${PGDATA:-}" ] || fail 2 "PGDATA is not set"
    [ -n "${POSTGRES_PASSWORD_FILE:-}" ] || fail 2 "POSTGRES_PASSWORD_FILE is not set"
    [ -r "$POSTGRES_PASSWORD_FILE" ] || fail 2 "password file $POSTGRES_PASSWORD_FILE is not readable"
    [ -s "$POSTGRES_PASSWORD_FILE" ] || fail 2 "password file $POSTGRES_PASSWORD_FILE is empty"
    [ "$(id -u)" = 0 ] || fail 3 "the entrypoint must start as root to prepare $PGDATA"
    command -v postgres >/dev/null || fail 2 "postgres binary not found on PATH"
}

prepare_pgdata() {
    MODULE=storage
    local pg_uid owner
    pg_uid=$(id -u postgres)
    mkdir -p "$PGDATA"
    owner=$(stat -c %u "$PGDATA")
    if [ "$owner" != "$pg_uid" ]; then
        # An empty root-owned folder is a fresh named volume or mount point: take it.
        if [ "$owner" = 0 ] && [ -z "$(ls -A "$PGDATA")" ]; then
            chown postgres:postgres "$PGDATA"
        else
            fail 3 "$PGDATA is owned by uid $owner but postgres runs as uid $pg_uid; on the host run: chown -R $pg_uid:$(id -g postgres) <data folder> && chmod 700 <data folder>"
        fi
    fi
    chmod 700 "$PGDATA"
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    log INFO "PGDATA is $PGDATA (uid $pg_uid, mode 700)"
}

initialise_cluster() {
    MODULE=init
    if [ -s "$PGDATA/PG_VERSION" ]; then
        log INFO "cluster found (PostgreSQL $(cat "$PGDATA/PG_VERSION")), skipping initdb"
        return
    fi
    [ -z "$(ls -A "$PGDATA")" ] || fail 3 "$PGDATA is not empty but holds no cluster (no PG_VERSION); move its contents away"
    set_state INITIALIZING
    local pwfile
    pwfile=$(mktemp /tmp/pgbox-pw.XXXXXX)
    # initdb reads the first line of --pwfile: the password never reaches SQL or argv.
    head -n 1 "$POSTGRES_PASSWORD_FILE" >"$pwfile"
    chown postgres:postgres "$pwfile"
    chmod 600 "$pwfile"
    if ! as_postgres initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/tmp/initdb.log 2>&1; then
        rm -f "$pwfile"
        cat /tmp/initdb.log
        fail 4 "initdb failed"
    fi
    rm -f "$pwfile"
    {
        echo "# pgbox: password logins from any address the engine forwards"
        echo "host all all 0.0.0.0/0 scram-sha-256"
        echo "host all all ::/0 scram-sha-256"
    } >>"$PGDATA/pg_hba.conf"
    # Temporary server on the Unix socket only: nothing outside can see it.
    as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start >/tmp/initdb.log 2>&1 ||
        { cat /tmp/initdb.log; fail 4 "temporary server did not start"; }
    if [ "$POSTGRES_DB" != postgres ]; then
        as_postgres psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
            -v db="$POSTGRES_DB" -v owner="$POSTGRES_USER" <<<'CREATE DATABASE :"db" OWNER :"owner";' ||
            fail 4 "could not create database $POSTGRES_DB"
    fi
    as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop >/dev/null
    log INFO "cluster initialised: user $POSTGRES_USER, database $POSTGRES_DB"
    set_state READY
}

PG_PID=""
STOP_REQUESTED=""

# True while the process runs. `kill -0` is not enough: an exited child stays a
# zombie until it is reaped, and kill -0 succeeds on zombies.
alive() {
    local _pid _comm state
    [ -r "/proc/$1/stat" ] || return 1
    read -r _pid _comm state _ <"/proc/$1/stat" || return 1
    [ "$state" != Z ]
}

shutdown() {
    MODULE=shutdown
    STOP_REQUESTED=1
    set_state STOPPING
    local started=$EPOCHREALTIME
    if [ -n "$PG_PID" ] && alive "$PG_PID"; then
        kill -INT "$PG_PID" # fast shutdown: roll back transactions, checkpoint, exit
        local deadline=$((SECONDS + SHUTDOWN_TIMEOUT))
        while alive "$PG_PID" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
        if alive "$PG_PID"; then
            log WARN "fast shutdown exceeded ${SHUTDOWN_TIMEOUT}s, switching to immediate shutdown"
            kill -QUIT "$PG_PID"
            deadline=$((SECONDS + 5))
            while alive "$PG_PID" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
            alive "$PG_PID" && kill -KILL "$PG_PID"
        fi
        wait "$PG_PID" 2>/dev/null || true
    fi
    log INFO "PostgreSQL stopped in $(elapsed "$started")s"
    set_state STOPPED
    exit 0
}

run_postgres() {
    MODULE=startup
    set_state STARTING
    trap shutdown TERM INT
    # Not through the as_postgres function: `function &` would fork a subshell and
    # $! would name it instead of the postmaster that must receive the signals.
    setpriv --reuid=postgres --regid=postgres --init-groups -- \
        postgres -D "$PGDATA" -c listen_addresses='*' -c port=5432 &
    PG_PID=$!
    # Ready means: a TCP connection to 127.0.0.1 is accepted by the real server.
    until pg_isready --host=127.0.0.1 --port=5432 --timeout=1 --quiet; do
        alive "$PG_PID" || { wait "$PG_PID" || true; fail 4 "PostgreSQL exited during startup"; }
        sleep 0.05
    done
    set_state RUNNING
    local status=0
    # `wait` returns early when a trapped signal arrives; the trap then exits.
    wait "$PG_PID" || status=$?
    [ -n "$STOP_REQUESTED" ] && return
    fail 4 "PostgreSQL exited unexpectedly with status $status"
}

main() {
    echo UNINITIALIZED >"$STATE_FILE"
    validate
    prepare_pgdata
    initialise_cluster
    run_postgres
}

main "$@"
