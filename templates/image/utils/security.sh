#!/bin/bash
# utils/security.sh: file permissions, privilege drop to postgres, audit events.
# shellcheck shell=bash

# Run a command as the postgres user. `exec` keeps the PID when used as `run_as_postgres ... &`
# from a subshell-free context; for background servers use start_as_postgres.
run_as_postgres() {
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
}

# Give a path to postgres with a mode.
secure_path() {
    local path=$1 mode=$2
    chown postgres:postgres "$path"
    chmod "$mode" "$path"
}

# Copy a secret to a private temporary file readable by postgres only; prints its path.
private_copy_for_postgres() {
    local src=$1 tmp
    tmp=$(mktemp /tmp/pgbox-secret.XXXXXX)
    head -n 1 "$src" >"$tmp"
    secure_path "$tmp" 600
    printf '%s\n' "$tmp"
}

# An audit event: one line, prefixed so it can be filtered from the log.
audit() {
    MODULE=audit log_info "event=$1${2:+ $2}"
}
