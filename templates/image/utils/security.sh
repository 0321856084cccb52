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

# Copy the server certificate and key from the read-only mount to a folder postgres
# owns, with the key at mode 0600 as PostgreSQL requires.
install_tls_material() {
    local src=/etc/pgbox/tls dst=/var/lib/postgresql/tls
    [ -r "$src/server.crt" ] && [ -r "$src/server.key" ] || return 0
    install -d -o postgres -g postgres -m 700 "$dst"
    install -o postgres -g postgres -m 644 "$src/server.crt" "$dst/server.crt"
    install -o postgres -g postgres -m 600 "$src/server.key" "$dst/server.key"
    audit tls-installed "cert=$dst/server.crt"
}
