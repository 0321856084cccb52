#!/bin/bash
# utils/validation.sh: checks of the environment, config files, permissions and tools.
# Each check logs what is wrong and returns non-zero; callers decide the exit code.
# shellcheck shell=bash

# Exit codes by error class (documented in pgbox's README).
readonly EXIT_INTERNAL=1 EXIT_CONFIG=2 EXIT_STORAGE=3 EXIT_POSTGRES=4
export EXIT_INTERNAL EXIT_CONFIG EXIT_STORAGE EXIT_POSTGRES

require_env() {
    local var missing=0
    for var in "$@"; do
        if [ -z "${!var:-}" ]; then
            log_error "$var is not set"
            missing=1
        fi
    done
    return $missing
}

require_readable_file() {
    if [ ! -r "$1" ]; then
        log_error "$1 is not readable"
        return 1
    fi
    if [ ! -s "$1" ]; then
        log_error "$1 is empty"
        return 1
    fi
}

require_commands() {
    local c missing=0
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            log_error "required command $c is not installed"
            missing=1
        fi
    done
    return $missing
}

require_integer() {
    local name=$1 value=$2
    if ! [[ "$value" =~ ^[0-9]+$ ]]; then
        log_error "$name must be a whole number, not '$value'"
        return 1
    fi
}

require_one_of() {
    local name=$1 value=$2
    shift 2
    local v
    for v in "$@"; do [ "$v" = "$value" ] && return 0; done
    log_error "$name must be one of: $*; not '$value'"
    return 1
}

# Load the configuration as a real start would (postgres -C parses every file and
# rejects bad values). Prints the server's own error message on failure.
check_postgres_config() {
    local out
    if ! out=$(setpriv --reuid=postgres --regid=postgres --init-groups -- postgres -D "$PGDATA" -C max_connections 2>&1); then
        printf '%s\n' "$out" | grep -E 'FATAL|ERROR|LOG|DETAIL|HINT' || printf '%s\n' "$out"
        return 1
    fi
}
