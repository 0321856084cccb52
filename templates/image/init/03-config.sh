#!/bin/bash
# init/03-config.sh: keep the original config files, make sure host connections use
# scram-sha-256 passwords from any address the engine forwards, check the syntax.
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE, VALIDATE_EXIT and the paths are read by other modules

module_validate() {
    VALIDATE_EXIT=$EXIT_CONFIG
    require_commands postgres || return 1
}

module_main() {
    local f
    for f in postgresql.conf pg_hba.conf; do
        if [ -f "$PGDATA/$f" ] && [ ! -f "$PGDATA/$f.original" ]; then
            cp -p "$PGDATA/$f" "$PGDATA/$f.original"
            log_info "kept the original $f as $f.original"
        fi
    done
    if ! grep -q '^# pgbox: host access' "$PGDATA/pg_hba.conf"; then
        {
            echo "# pgbox: host access, password logins from any address the engine forwards"
            echo "host all all 0.0.0.0/0 scram-sha-256"
            echo "host all all ::/0 scram-sha-256"
        } >>"$PGDATA/pg_hba.conf"
    fi
    # postgres -C loads the configuration and fails on a bad setting, like a real start.
    local out
    if ! out=$(run_as_postgres postgres -D "$PGDATA" -C max_connections 2>&1); then
        printf '%s\n' "$out"
        fail "$EXIT_CONFIG" "the PostgreSQL configuration is invalid: $(printf '%s' "$out" | grep -m1 -E 'FATAL|LOG|ERROR' || printf '%s' "$out" | head -n 1)"
    fi
    log_debug "configuration checked (max_connections=$out)"
}
