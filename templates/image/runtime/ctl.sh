#!/bin/bash
# runtime/ctl.sh (pgbox-ctl): what pgbox runs inside the container.
#   pgbox-ctl state              print the entrypoint state
#   pgbox-ctl reload             check the configuration, reload it, list settings pending a restart
#   pgbox-ctl save               fallback mode: save a consistent live copy now
#   pgbox-ctl maintenance on|off stop PostgreSQL and keep the container up, or resume
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
save)
    [ "$PGBOX_STORAGE_MODE" = fallback ] || { echo "save applies to fallback storage only; this container uses $PGBOX_STORAGE_MODE" >&2; exit 2; }
    [ "$(current_state)" = RUNNING ] || { echo "PostgreSQL is not running (state $(current_state))" >&2; exit 1; }
    save_live
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
    echo "usage: pgbox-ctl state | reload | save | maintenance on|off" >&2
    exit 2
    ;;
esac
