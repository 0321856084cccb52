#!/bin/bash
# runtime/ctl.sh (pgbox-ctl): what pgbox runs inside the container.
#   pgbox-ctl state              print the entrypoint state
#   pgbox-ctl reload             check the configuration, reload it, list settings pending a restart
#   pgbox-ctl save               fallback mode: save a consistent live copy now
#   pgbox-ctl save-stream        a consistent copy (pg_basebackup tar, zstd) on stdout
#   pgbox-ctl maintenance on|off stop PostgreSQL and keep the container up, or resume
#   pgbox-ctl versions           server and pg_dump versions
#   pgbox-ctl dump DB FORMAT COMPRESSION LEVEL   a dump on stdout (never through a TTY)
#   pgbox-ctl globals - - COMPRESSION LEVEL      roles and tablespaces on stdout
#   pgbox-ctl receive DEST COMPRESSION [tar]     stdin to a file or folder for pg_restore
#   pgbox-ctl patroni-api METHOD PATH [JSON]     [cluster]: Patroni's REST API (status line, body)
set -Eeuo pipefail
PGBOX_LIB="${PGBOX_LIB:-/usr/local/lib/pgbox}"
MODULE=ctl
# shellcheck source=runtime/common.sh
source "$PGBOX_LIB/runtime/common.sh"
# shellcheck source=runtime/persist.sh
source "$PGBOX_LIB/runtime/persist.sh"

wait_for_state() {
    local want=$1 seconds=$2 deadline
    deadline=$((SECONDS + seconds))
    until [ "$(current_state)" = "$want" ]; do
        case "$(current_state)" in ERROR | STOPPING | STOPPED)
            echo "the entrypoint is $(current_state)" >&2
            return 1
            ;;
        esac
        [ "$SECONDS" -lt "$deadline" ] || { echo "still $(current_state) after ${seconds}s" >&2; return 1; }
        sleep 0.05
    done
}

case "${1:-}" in
patroni-api)
    # shellcheck source=runtime/patroni.sh
    source "$PGBOX_LIB/runtime/patroni.sh"
    shift
    patroni_api "$@"
    ;;
state)
    current_state
    ;;
reload)
    # Check first: a bad value must never reach the running server.
    install_tls_material >/dev/null # its audit line belongs to the container log, not to pgbox
    if ! out=$(check_postgres_config); then
        printf '%s\n' "$out" >&2
        exit 1
    fi
    q() { run_as_postgres psql --no-psqlrc -qAt --username="$POSTGRES_USER" --dbname=postgres -c "$1"; }
    before=$(q "select pg_conf_load_time()")
    run_as_postgres pg_ctl --pgdata="$PGDATA" --silent reload
    deadline=$((SECONDS + 10))
    while [ "$(q "select pg_conf_load_time()")" = "$before" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.02; done
    # Parameters that changed but need a restart, one per line.
    q "select name from pg_settings where pending_restart order by name"
    ;;
versions)
    # Server and pg_dump versions, one per line (for backup manifests).
    run_as_postgres psql --no-psqlrc -qAt --username="$POSTGRES_USER" --dbname=postgres -c "show server_version"
    pg_dump --version
    ;;
dump | globals)
    # pgbox-ctl dump DB FORMAT COMPRESS LEVEL / pgbox-ctl globals - - COMPRESS LEVEL
    # Writes the (compressed) dump to stdout; pg_dump's messages go to stderr.
    # pipefail makes a failure of pg_dump, tar or the compressor the exit code.
    db=${2:?database}
    format=${3:-custom}
    compress=${4:-zstd}
    level=${5:-3}
    require_integer level "$level"
    compressor() {
        case "$compress" in
        zstd) zstd -q -T0 "-$level" -c ;;
        gzip) gzip -c "-$level" ;;
        none) cat ;;
        *) echo "unknown compression $compress" >&2; return 2 ;;
        esac
    }
    dump_as() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
    if [ "$1" = globals ]; then
        dump_as pg_dumpall --globals-only --username="$POSTGRES_USER" | compressor
        exit
    fi
    case "$format" in
    custom) dump_as pg_dump --format=custom --compress=0 --username="$POSTGRES_USER" --dbname="$db" | compressor ;;
    plain) dump_as pg_dump --format=plain --username="$POSTGRES_USER" --dbname="$db" | compressor ;;
    directory)
        dir=$(mktemp -d /tmp/pgbox-dump.XXXXXX)
        chown postgres:postgres "$dir"
        trap 'rm -rf "$dir"' EXIT
        dump_as pg_dump --format=directory --compress=0 --jobs="$(nproc)" \
            --username="$POSTGRES_USER" --dbname="$db" --file="$dir/dump"
        tar -C "$dir/dump" -cf - . | compressor
        ;;
    *)
        echo "unknown format $format" >&2
        exit 2
        ;;
    esac
    ;;
receive)
    # pgbox-ctl receive DEST COMPRESSION [tar]: stdin, decompressed, to DEST (a file,
    # or with `tar` a folder), owned by postgres so pg_restore can read it.
    dest=${2:?destination}
    compression=${3:-none}
    decompress() {
        case "$compression" in
        zstd) zstd -q -dc ;;
        gzip) gzip -dc ;;
        none) cat ;;
        *) echo "unknown compression $compression" >&2; return 2 ;;
        esac
    }
    mkdir -p "$(dirname "$dest")"
    if [ "${4:-}" = tar ]; then
        mkdir -p "$dest"
        decompress | tar -C "$dest" -xf -
    else
        decompress >"$dest"
    fi
    chown -R postgres:postgres "$(dirname "$dest")"
    ;;
save)
    [ "$PGBOX_STORAGE_MODE" = fallback ] || { echo "save applies to fallback storage only; this container uses $PGBOX_STORAGE_MODE" >&2; exit 2; }
    [ "$(current_state)" = RUNNING ] || { echo "PostgreSQL is not running (state $(current_state))" >&2; exit 1; }
    save_live
    ;;
save-stream)
    [ "$(current_state)" = RUNNING ] || { echo "PostgreSQL is not running (state $(current_state))" >&2; exit 1; }
    save_stream
    ;;
maintenance)
    case "${2:-}" in
    on)
        touch "$MAINTENANCE_FLAG"
        if [ "$(current_state)" = RUNNING ]; then
            run_as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop
        fi
        wait_for_state MAINTENANCE 60
        ;;
    off)
        rm -f "$MAINTENANCE_FLAG"
        wait_for_state RUNNING 120
        ;;
    *)
        echo "usage: pgbox-ctl maintenance on|off" >&2
        exit 2
        ;;
    esac
    ;;
*)
    echo "usage: pgbox-ctl state | reload | save | save-stream | maintenance on|off | versions | dump | globals | receive" >&2
    exit 2
    ;;
esac
