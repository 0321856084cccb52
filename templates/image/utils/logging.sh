#!/bin/bash
# utils/logging.sh: structured log lines `<time> <LEVEL> <module>: <message>` on stdout.
# DEBUG=1 enables log_debug. MODULE names the module that is speaking.
# shellcheck shell=bash

MODULE="${MODULE:-entrypoint}"

_log() {
    local level=$1
    shift
    printf '%s %-5s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$level" "$MODULE" "$*"
}

log_info() { _log INFO "$@"; }
log_warn() { _log WARN "$@"; }
log_error() { _log ERROR "$@"; }
log_debug() {
    if [ "${DEBUG:-0}" = 1 ]; then _log DEBUG "$@"; fi
    return 0
}

# Seconds since an $EPOCHREALTIME value, with milliseconds.
elapsed_since() {
    local now=${EPOCHREALTIME/./} then=${1/./}
    local ms=$(((now - then) / 1000))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}
