#!/bin/bash
# init/02-database.sh: restore the fallback tarball, or initdb when there is no cluster,
# then check the cluster's integrity. initdb never runs over existing data: a folder
# with files but no PG_VERSION, or a tarball that fails its checks, stops the start.
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
        *.sh) PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB" run_as_postgres bash -s <"$f" >/tmp/init-script.log 2>&1 || status=$? ;;
        *)
            log_warn "ignoring $(basename "$f") (init scripts end in .sql, .sql.gz or .sh)"
            continue
            ;;
        esac
        if [ "$status" != 0 ]; then
            cat /tmp/init-script.log
            run_as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -m immediate stop >/dev/null 2>&1 || true
            find "$PGDATA" -mindepth 1 -delete
            fail "$EXIT_POSTGRES" "init script $(basename "$f") failed (exit $status); the new cluster was removed so the next start runs every script again"
        fi
        log_info "ran init script $(basename "$f")"
    done
}

init_cluster() {
    set_state INITIALIZING
    local pwfile
    pwfile=$(private_copy_for_postgres "$POSTGRES_PASSWORD_FILE")
    # initdb reads the password from --pwfile: it never reaches SQL or argv.
    if ! run_as_postgres initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/tmp/initdb.log 2>&1; then
        rm -f "$pwfile"
        cat /tmp/initdb.log
        fail "$EXIT_POSTGRES" "initdb failed"
    fi
    rm -f "$pwfile"
    audit cluster-created "user=$POSTGRES_USER"
    # Temporary server on the Unix socket only: nothing outside can connect to it.
    run_as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start >/tmp/initdb.log 2>&1 ||
        { cat /tmp/initdb.log; fail "$EXIT_POSTGRES" "temporary server did not start"; }
    if [ "$POSTGRES_DB" != postgres ]; then
        run_as_postgres psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
            -v db="$POSTGRES_DB" -v owner="$POSTGRES_USER" <<<'CREATE DATABASE :"db" OWNER :"owner";' ||
            fail "$EXIT_POSTGRES" "could not create database $POSTGRES_DB"
    fi
    run_init_scripts
    run_as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop >/dev/null
    log_info "cluster initialised: user $POSTGRES_USER, database $POSTGRES_DB"
}

# At shutdown: remove what initialisation left in /tmp.
module_cleanup() {
    rm -f /tmp/initdb.log /tmp/init-script.log /tmp/pgbox-secret.*
}

module_main() {
    if [ "$PGBOX_STORAGE_MODE" = fallback ] && [ -e "$TARBALL" ]; then
        restore_tarball "$TARBALL"
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
        fail "$EXIT_CONFIG" "the cluster is PostgreSQL $version but this image runs PostgreSQL $PG_MAJOR; set postgres.version = $version in pgbox.toml"
    fi
    [ -f "$PGDATA/global/pg_control" ] || fail "$EXIT_STORAGE" "$PGDATA has no global/pg_control: the cluster is damaged"
    set_state READY
}
