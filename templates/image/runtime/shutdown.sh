#!/bin/bash
# runtime/shutdown.sh: on SIGTERM or SIGINT, a fast shutdown bounded by
# PGBOX_SHUTDOWN_TIMEOUT (30 s), then an immediate one, then SIGKILL; in fallback
# mode the stopped cluster is saved; then the modules' cleanups; the time is logged.
# A failed save ends in state ERROR with exit code 3 (storage): the container and
# its PGDATA, the only up-to-date copy, stay as they are for pgbox to report.
# The engine's stop timeout set by pgbox exceeds this whole sequence.
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE, VALIDATE_EXIT and the paths are read by other modules

# shellcheck source=runtime/persist.sh
source "$PGBOX_LIB/runtime/persist.sh"

PG_PID=""
PG_STOP_SIGNAL=INT
SAVER_PID=""
SWITCHER_PID=""
CATCHUP_PID=""

module_validate() {
    VALIDATE_EXIT=$EXIT_CONFIG
    require_integer PGBOX_SHUTDOWN_TIMEOUT "${PGBOX_SHUTDOWN_TIMEOUT:-30}"
}

wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
    ! alive "$pid"
}

stop_postgres() {
    local pid=$PG_PID
    [ -n "$pid" ] && alive "$pid" || return 0
    # Fast shutdown (roll back open transactions, checkpoint, exit); Patroni (patroni
    # mode) takes SIGTERM, stops PostgreSQL the same way and releases the leader key.
    kill -"${PG_STOP_SIGNAL:-INT}" "$pid"
    if ! wait_gone "$pid" "${PGBOX_SHUTDOWN_TIMEOUT:-30}"; then
        log_warn "fast shutdown exceeded ${PGBOX_SHUTDOWN_TIMEOUT:-30}s, switching to immediate shutdown"
        kill -QUIT "$pid"
        if ! wait_gone "$pid" 5; then
            log_error "immediate shutdown did not finish, killing PostgreSQL"
            kill -KILL "$pid"
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

on_stop() {
    MODULE=shutdown
    trap '' TERM INT
    local t0=$EPOCHREALTIME
    set_state STOPPING
    local pid
    for pid in $SAVER_PID $CATCHUP_PID $SWITCHER_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    stop_postgres
    log_info "PostgreSQL stopped in $(elapsed_since "$t0")s"
    local saved=1
    # PGBOX_NO_SAVE=1: a read-only source of `pgbox upgrade`, whose tarball is kept as it was.
    if [ "$PGBOX_STORAGE_MODE" = fallback ] && [ "${PGBOX_NO_SAVE:-0}" != 1 ]; then
        if ! save_offline; then
            saved=0
            log_error "saving the cluster failed; the previous tarball is kept and the newest data stays in the container's $PGDATA"
        fi
    fi
    run_cleanups
    log_info "shutdown complete in $(elapsed_since "$t0")s"
    if [ "$saved" = 0 ]; then
        set_state ERROR "stopped, but the cluster was not saved: $(cat "$UNSAVED_MARK" 2>/dev/null)"
        exit "$EXIT_STORAGE"
    fi
    set_state STOPPED
    exit 0
}

module_main() {
    trap on_stop TERM INT
}
