#!/bin/bash
# runtime/ctl.sh (pgbox-ctl): what pgbox runs inside the container.
#   pgbox-ctl state              print the entrypoint state
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
    echo "usage: pgbox-ctl state | save | maintenance on|off" >&2
    exit 2
    ;;
esac
