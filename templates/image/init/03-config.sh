#!/bin/bash
# init/03-config.sh: the configuration. pgbox renders postgresql.conf and pg_hba.conf
# from pgbox.toml into /etc/pgbox/conf (a read-only mount); PGDATA's postgresql.conf
# only includes it, and initdb's originals are kept as *.original. TLS material is
# installed with safe permissions, and the whole configuration is checked before
# PostgreSQL starts: a bad setting stops here with PostgreSQL's own message.
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE, VALIDATE_EXIT and the paths are read by other modules

CONF_SRC=/etc/pgbox/conf

module_validate() {
    VALIDATE_EXIT=$EXIT_CONFIG
    require_commands postgres || return 1
    if [ -e "$CONF_SRC/postgresql.conf" ] && [ ! -r "$CONF_SRC/postgresql.conf" ]; then
        log_error "$CONF_SRC/postgresql.conf is not readable"
        return 1
    fi
}

module_main() {
    local f
    for f in postgresql.conf pg_hba.conf; do
        if [ -f "$PGDATA/$f" ] && [ ! -f "$PGDATA/$f.original" ]; then
            cp -p "$PGDATA/$f" "$PGDATA/$f.original"
            log_info "kept the original $f as $f.original"
        fi
    done
    if [ -r "$CONF_SRC/postgresql.conf" ]; then
        local stub
        stub="# Managed by pgbox: the settings come from pgbox.toml, rendered to $CONF_SRC.
# initdb's file is kept as postgresql.conf.original.
include '$CONF_SRC/postgresql.conf'"
        if [ "$(cat "$PGDATA/postgresql.conf" 2>/dev/null)" != "$stub" ]; then
            printf '%s\n' "$stub" >"$PGDATA/postgresql.conf"
            chown postgres:postgres "$PGDATA/postgresql.conf"
            log_info "postgresql.conf now includes $CONF_SRC/postgresql.conf"
        fi
    elif ! grep -q '^# pgbox: host access' "$PGDATA/pg_hba.conf"; then
        # No rendered config mounted (an image run by hand): open host access with passwords.
        {
            echo "# pgbox: host access, password logins from any address the engine forwards"
            echo "host all all 0.0.0.0/0 scram-sha-256"
            echo "host all all ::/0 scram-sha-256"
        } >>"$PGDATA/pg_hba.conf"
    fi
    install_tls_material
    local out
    if ! out=$(check_postgres_config); then
        printf '%s\n' "$out"
        fail "$EXIT_CONFIG" "the PostgreSQL configuration is invalid: $(printf '%s' "$out" | head -n 1)"
    fi
    log_debug "configuration checked"
}
