#!/bin/bash
# runtime/startup.sh: run PostgreSQL (direct mode), or Patroni (patroni mode,
# runtime/patroni.sh), or keep the container up with it
# stopped (maintenance mode, while /run/pgbox/maintenance exists). Ready means a
# TCP connection to 127.0.0.1 is accepted by the real server; only then is the
# state RUNNING. In fallback mode with PGBOX_SAVE_INTERVAL > 0 a live save runs
# periodically, and once RUNNING a cluster the tarball lags behind (a new one, or one
# recovered after a crash) is saved right away.
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE, VALIDATE_EXIT and the paths are read by other modules

# shellcheck source=runtime/persist.sh
source "$PGBOX_LIB/runtime/persist.sh"

module_validate() {
    VALIDATE_EXIT=$EXIT_CONFIG
    require_integer PGBOX_SAVE_INTERVAL "${PGBOX_SAVE_INTERVAL:-0}"
    require_integer PGBOX_ARCHIVE_TIMEOUT "${PGBOX_ARCHIVE_TIMEOUT:-0}"
}

start_postgres() {
    MODULE=startup
    set_state STARTING
    # From here on PGDATA can gain writes the tarball lacks, until a save at stop.
    [ "$PGBOX_STORAGE_MODE" != fallback ] || mark_unsaved "PostgreSQL ran since the last save and the container stopped without a save (a crash or a kill)"
    # setpriv directly, not a shell function: `function &` would fork a subshell and
    # $! would name it instead of the postmaster that must receive the signals.
    # PGBOX_READ_ONLY=1 (the old cluster as the source of `pgbox upgrade`): every
    # transaction is read-only, set on the command line so nothing is stored in PGDATA.
    local extra=()
    [ "${PGBOX_READ_ONLY:-0}" != 1 ] || extra=(-c default_transaction_read_only=on)
    # PGBOX_FAST_LOAD=1 (the new cluster of `pgbox upgrade` while it is filled): no
    # fsync, no WAL beyond the minimum; pgbox syncs the data to disk before it is used.
    [ "${PGBOX_FAST_LOAD:-0}" != 1 ] || extra+=(-c fsync=off -c full_page_writes=off
        -c synchronous_commit=off -c autovacuum=off -c wal_level=minimal -c max_wal_senders=0
        -c archive_mode=off -c max_wal_size=8GB -c checkpoint_timeout=1h -c maintenance_work_mem=512MB)
    setpriv --reuid=postgres --regid=postgres --init-groups -- \
        postgres -D "$PGDATA" -c listen_addresses='*' -c port=5432 "${extra[@]}" &
    PG_PID=$!
    until pg_isready --host=127.0.0.1 --port=5432 --timeout=1 --quiet; do
        alive "$PG_PID" || { wait "$PG_PID" || true; fail "$EXIT_POSTGRES" "PostgreSQL exited during startup"; }
        sleep 0.05
    done
    set_state RUNNING
    if [ "$PGBOX_STORAGE_MODE" = fallback ] && [ "${CATCH_UP:-0}" = 1 ]; then
        CATCH_UP=0
        (
            MODULE=saver
            save_live || log_warn "saving the cluster after its start failed; it is saved again at stop, or with \`pgbox save\`"
        ) &
        CATCHUP_PID=$!
    fi
}

start_saver() {
    local interval=${PGBOX_SAVE_INTERVAL:-0}
    [ "$PGBOX_STORAGE_MODE" = fallback ] && [ "$interval" -gt 0 ] || return 0
    (
        MODULE=saver
        while sleep "$interval"; do
            if [ "$(current_state)" = RUNNING ]; then
                save_live || log_warn "periodic save failed; will retry in ${interval}s"
            fi
        done
    ) &
    SAVER_PID=$!
    log_info "saving a live copy every ${interval}s"
}

# [backup] pitr: a segment that holds writes is switched (and so archived) at least
# every PGBOX_ARCHIVE_TIMEOUT seconds. PostgreSQL's own archive_timeout is set too,
# but was seen not to switch a segment of this server after a write. A switch from
# SQL cannot tell the server's own bookkeeping records from writes (each switch makes
# the next standby snapshot), so it is taken only when rows were written since the
# last one: the sum of tup_inserted, tup_updated and tup_deleted over every database.
start_switcher() {
    local interval=${PGBOX_ARCHIVE_TIMEOUT:-0}
    [ "$interval" -gt 0 ] || return 0
    (
        MODULE=archiver
        local seen="" now first=1
        local psql_cmd=(psql --no-psqlrc -qAt -X -d postgres -U "$POSTGRES_USER")
        local count="select sum(tup_inserted + tup_updated + tup_deleted) from pg_stat_database"
        while sleep "$interval"; do
            [ "$(current_state)" = RUNNING ] || continue
            now=$(run_as_postgres "${psql_cmd[@]}" -c "$count" 2>/dev/null) || continue
            # The first look after a start switches in any case: writes made
            # before any count was taken are in that segment (one extra small
            # segment per start; without it a write right after a start waited
            # for an unrelated switch, 57 s at 10 s).
            if [ -n "$first" ] || [ "$now" != "$seen" ]; then
                run_as_postgres "${psql_cmd[@]}" -c "select pg_switch_wal() where not pg_is_in_recovery()" \
                    >/dev/null 2>&1 || true
            fi
            first=""
            seen=$now
        done
    ) &
    SWITCHER_PID=$!
}

# At shutdown: leftovers of an interrupted save.
module_cleanup() {
    rm -f "$PGBOX_MOUNT"/.pgsql.tar.zst.tmp-* "$TARBALL.prev.tmp" 2>/dev/null || true
}

module_main() {
    if [ "${PGBOX_MODE:-direct}" = patroni ]; then
        # shellcheck source=runtime/patroni.sh
        source "$PGBOX_LIB/runtime/patroni.sh"
        start_switcher
        run_patroni
        return
    fi
    start_saver
    start_switcher
    while :; do
        if [ -e "$MAINTENANCE_FLAG" ]; then
            MODULE=startup
            set_state MAINTENANCE "PostgreSQL is stopped; \`pgbox maintenance off\` starts it"
            audit maintenance-on
            while [ -e "$MAINTENANCE_FLAG" ]; do
                sleep 0.2 &
                wait $! || true
            done
            audit maintenance-off
        fi
        start_postgres
        local status=0
        # `wait` returns early when a trapped signal arrives; the trap then exits.
        wait "$PG_PID" || status=$?
        PG_PID=""
        if [ -e "$MAINTENANCE_FLAG" ]; then
            log_info "PostgreSQL stopped for maintenance"
            continue
        fi
        fail "$EXIT_POSTGRES" "PostgreSQL exited unexpectedly with status $status"
    done
}
