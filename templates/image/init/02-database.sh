#!/bin/bash
# init/02-database.sh: pick the cluster to start (fallback: the container's own PGDATA
# after crash recovery, or the tarball; see runtime/persist.sh for the rule), or initdb
# when there is none, then check the cluster's integrity. initdb never runs over
# existing data: a folder with files but no PG_VERSION, or a tarball that fails its
# checks, stops the start. Initialisation is atomic: initdb, the database and the init
# scripts run in INIT_STAGE, moved into place with PG_VERSION last; a leftover stage
# (a kill during the first start) held no user data and is cleared.
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE, VALIDATE_EXIT and the paths are read by other modules

# shellcheck source=runtime/persist.sh
source "$PGBOX_LIB/runtime/persist.sh"

module_validate() {
    VALIDATE_EXIT=$EXIT_CONFIG
    require_env POSTGRES_USER POSTGRES_DB POSTGRES_PASSWORD_FILE || return 1
    require_readable_file "$POSTGRES_PASSWORD_FILE" || return 1
    require_commands postgres initdb pg_ctl psql pg_isready setpriv zstd tar || return 1
    # A real start checks the tarball while restoring it; a dry run reads it once.
    if [ "${DRY_RUN:-0}" = 1 ] && [ "$PGBOX_STORAGE_MODE" = fallback ] && [ -e "$TARBALL" ]; then
        VALIDATE_EXIT=$EXIT_STORAGE
        if ! verify_tarball "$TARBALL"; then
            log_error "$DAMAGED_TARBALL"
            return 1
        fi
    fi
}

# Scripts from the init_dir mount, once, on the new cluster only, in name order.
# A failing script removes the new cluster, so the next start runs them all again
# instead of starting a half-initialised database.
run_init_scripts() {
    local dir=/etc/pgbox/initdb.d f status
    [ -d "$dir" ] || return 0
    local psql_cmd=(psql --no-psqlrc -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname="$POSTGRES_DB")
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        status=0
        case "$f" in
        *.sql) "${psql_cmd[@]}" -f "$f" >/tmp/init-script.log 2>&1 || status=$? ;;
        *.sql.gz) gzip -dc "$f" | "${psql_cmd[@]}" >/tmp/init-script.log 2>&1 || status=$? ;;
        *.sh) PGDATA="$INIT_STAGE" PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB" run_as_postgres bash -s <"$f" >/tmp/init-script.log 2>&1 || status=$? ;;
        *)
            log_warn "ignoring $(basename "$f") (init scripts end in .sql, .sql.gz or .sh)"
            continue
            ;;
        esac
        if [ "$status" != 0 ]; then
            cat /tmp/init-script.log
            run_as_postgres pg_ctl --pgdata="$INIT_STAGE" --wait --silent -m immediate stop >/dev/null 2>&1 || true
            rm -rf "$INIT_STAGE"
            fail "$EXIT_POSTGRES" "init script $(basename "$f") failed (exit $status); the new cluster was removed so the next start runs every script again"
        fi
        log_info "ran init script $(basename "$f")"
    done
}

# initdb's encoding, locale and checksums: UTF8 and C.UTF-8 by default; `pgbox upgrade`
# passes the old cluster's (PGBOX_ENCODING, PGBOX_LOCALE, PGBOX_LC_COLLATE, PGBOX_LC_CTYPE,
# PGBOX_DATA_CHECKSUMS=on|off; unset keeps initdb's default: on from PostgreSQL 18, off before).
initdb_options() {
    INITDB_EXTRA=(--encoding="${PGBOX_ENCODING:-UTF8}" --locale="${PGBOX_LOCALE:-C.UTF-8}")
    [ -z "${PGBOX_LC_COLLATE:-}" ] || INITDB_EXTRA+=(--lc-collate="$PGBOX_LC_COLLATE")
    [ -z "${PGBOX_LC_CTYPE:-}" ] || INITDB_EXTRA+=(--lc-ctype="$PGBOX_LC_CTYPE")
    case "${PGBOX_DATA_CHECKSUMS:-}" in
    on) INITDB_EXTRA+=(--data-checksums) ;;
    off) [ "$PG_MAJOR" -lt 18 ] || INITDB_EXTRA+=(--no-data-checksums) ;;
    '') ;;
    *) fail "$EXIT_CONFIG" "PGBOX_DATA_CHECKSUMS must be on or off, not ${PGBOX_DATA_CHECKSUMS}" ;;
    esac
}

init_cluster() {
    set_state INITIALIZING
    initdb_options
    local pwfile stage=$INIT_STAGE
    rm -rf "$stage"
    install -d -o postgres -g postgres -m 700 "$stage"
    pwfile=$(private_copy_for_postgres "$POSTGRES_PASSWORD_FILE")
    # initdb reads the password from --pwfile: it never reaches SQL or argv.
    if ! run_as_postgres initdb --pgdata="$stage" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        "${INITDB_EXTRA[@]}" --auth-local=trust --auth-host=scram-sha-256 >/tmp/initdb.log 2>&1; then
        rm -f "$pwfile"
        rm -rf "$stage"
        cat /tmp/initdb.log
        fail "$EXIT_POSTGRES" "initdb failed"
    fi
    rm -f "$pwfile"
    audit cluster-created "user=$POSTGRES_USER"
    # Temporary server on the Unix socket only: nothing outside can connect to it.
    run_as_postgres pg_ctl --pgdata="$stage" --wait --silent -o "-c listen_addresses=''" start >/tmp/initdb.log 2>&1 ||
        { cat /tmp/initdb.log; fail "$EXIT_POSTGRES" "temporary server did not start"; }
    if [ "$POSTGRES_DB" != postgres ]; then
        run_as_postgres psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
            -v db="$POSTGRES_DB" -v owner="$POSTGRES_USER" <<<'CREATE DATABASE :"db" OWNER :"owner";' ||
            fail "$EXIT_POSTGRES" "could not create database $POSTGRES_DB"
    fi
    # PGBOX_SKIP_INIT_SCRIPTS=1: the target of `pgbox upgrade`, filled from the old cluster.
    [ "${PGBOX_SKIP_INIT_SCRIPTS:-0}" = 1 ] || run_init_scripts
    run_as_postgres pg_ctl --pgdata="$stage" --wait --silent -m fast stop >/dev/null
    rm -f "$stage/postmaster.opts"
    # Into place, PG_VERSION last: until it is at the root, the next start redoes all of this.
    find "$stage" -mindepth 1 -maxdepth 1 ! -name PG_VERSION -exec mv -t "$PGDATA" {} +
    sync "$PGDATA"
    mv "$stage/PG_VERSION" "$PGDATA/PG_VERSION"
    sync "$PGDATA"
    rmdir "$stage"
    [ "$PGBOX_STORAGE_MODE" != fallback ] || mark_unsaved "a new cluster, not saved yet"
    CATCH_UP=1
    log_info "cluster initialised: user $POSTGRES_USER, database $POSTGRES_DB"
}

# What a cluster has at its root (PostgreSQL 12 to 18): only these are cleared with
# an interrupted initialisation; anything else stops the start as before.
CLUSTER_ENTRIES="base global pg_commit_ts pg_dynshmem pg_logical pg_multixact pg_notify pg_replslot
pg_serial pg_snapshots pg_stat pg_stat_tmp pg_subtrans pg_tblspc pg_twophase pg_wal pg_xact
postgresql.conf postgresql.auto.conf pg_hba.conf pg_ident.conf postmaster.opts postmaster.pid
current_logfiles"

# A stage without PG_VERSION at the root is an initialisation that was cut short
# (the container was killed or stopped during its first start): no user data.
clear_interrupted_init() {
    [ -d "$INIT_STAGE" ] || return 0
    if [ -s "$PGDATA/PG_VERSION" ]; then
        rm -rf "$INIT_STAGE" # the move finished; only the empty stage was left
        return 0
    fi
    log_warn "found an interrupted initialisation in $PGDATA (no PG_VERSION at its root): it holds no user data; removing it and initialising again"
    local e
    for e in $CLUSTER_ENTRIES; do rm -rf "${PGDATA:?}/$e"; done
    rm -rf "$INIT_STAGE"
}

# The cluster was not shut down cleanly: run PostgreSQL's crash recovery on the Unix
# socket only, then stop it cleanly. Fails when it does not start.
recover_cluster() {
    local out
    out=$(check_postgres_config) || { printf '%s\n' "$out"; fail "$EXIT_CONFIG" "the PostgreSQL configuration is invalid: $(printf '%s' "$out" | head -n 1)"; }
    log_info "PGDATA was not shut down cleanly (a crash or a kill): running PostgreSQL's crash recovery"
    rm -f /tmp/recovery.log
    if run_as_postgres pg_ctl --pgdata="$PGDATA" --wait --timeout=3600 --silent -l /tmp/recovery.log \
        -o "-c listen_addresses=''" start >/dev/null 2>&1 &&
        run_as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop >/dev/null 2>&1; then
        log_info "crash recovery done: every committed transaction is back"
        return 0
    fi
    run_as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -m immediate stop >/dev/null 2>&1 || true
    cat /tmp/recovery.log 2>/dev/null || true
    return 1
}

# Fallback: decide between the container's own PGDATA and the tarball.
pick_fallback_source() {
    rm -f "$PGBOX_MOUNT"/.pgsql.tar.zst.tmp-* "$PGBOX_MOUNT"/pgsql-*.tar.zst.tmp 2>/dev/null || true
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        [ ! -e "$TARBALL" ] || restore_tarball "$TARBALL"
        return 0
    fi
    local kept
    if [ -e "$TARBALL" ] && ! tarball_is_ours; then
        log_warn "$TARBALL is not the tarball this container last saved or restored: it was replaced, so it is used"
        kept=$(keep_aside replaced) ||
            fail "$EXIT_STORAGE" "keeping the container's own cluster aside before restoring the replaced tarball failed; free space in the data folder and start again (nothing was changed)"
        log_warn "⚠️ the container's own cluster is kept as $kept"
        restore_tarball "$TARBALL"
        return 0
    fi
    log_info "starting from the container's own PGDATA: it is at least as new as ${TARBALL##*/}"
    if ! run_as_postgres pg_controldata "$PGDATA" 2>/dev/null | grep -q 'cluster state: *shut down$' &&
        ! recover_cluster; then
        [ -e "$TARBALL" ] ||
            fail "$EXIT_POSTGRES" "the container's cluster does not start (see the lines above) and there is no saved tarball to fall back to; it is left as it is"
        kept=$(keep_aside unstartable) ||
            fail "$EXIT_STORAGE" "the container's cluster does not start and keeping a copy of it in the data folder failed; free space there and start again (nothing was changed)"
        log_error "⚠️ the container's cluster could not start; it is kept as $kept; starting from ${TARBALL##*/}, the last save, which lacks the writes made after it"
        restore_tarball "$TARBALL"
        return 0
    fi
    # The tarball lacks what this PGDATA gained since its last save: save once RUNNING.
    if [ -e "$UNSAVED_MARK" ] || [ ! -e "$TARBALL" ]; then CATCH_UP=1; fi
}

# At shutdown: remove what initialisation left in /tmp.
module_cleanup() {
    rm -f /tmp/initdb.log /tmp/init-script.log /tmp/pgbox-secret.*
}

module_main() {
    CATCH_UP=0
    clear_interrupted_init
    if [ "$PGBOX_STORAGE_MODE" = fallback ]; then
        pick_fallback_source
    fi
    if [ -s "$PGDATA/PG_VERSION" ]; then
        log_info "cluster found (PostgreSQL $(cat "$PGDATA/PG_VERSION")), skipping initdb"
    elif [ -n "$(ls -A "$PGDATA")" ]; then
        fail "$EXIT_STORAGE" "$PGDATA is not empty but holds no cluster (no PG_VERSION); move its contents away"
    else
        init_cluster
    fi
    local version
    version=$(cat "$PGDATA/PG_VERSION")
    if [ "$version" != "$PG_MAJOR" ]; then
        fail "$EXIT_CONFIG" "the cluster is PostgreSQL $version but this image runs PostgreSQL $PG_MAJOR; set postgres.version = $version in pgbox.toml (to move the data to $PG_MAJOR, run \`pgbox upgrade --to $PG_MAJOR\` after that)"
    fi
    local f
    for f in global/pg_control global/pg_filenode.map; do
        [ -f "$PGDATA/$f" ] ||
            fail "$EXIT_STORAGE" "$PGDATA has no $f: its initdb never completed (a first start cut short by an older pgbox) or the cluster is damaged; if it never held data, \`pgbox down --purge\` and \`pgbox up\` initialise it again"
    done
    set_state READY
}
