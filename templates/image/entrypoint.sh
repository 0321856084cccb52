#!/bin/bash
# pgbox container entrypoint: runs the modules in order and keeps PostgreSQL running.
#
#   utils/    logging.sh, validation.sh, security.sh   (sourced helpers)
#   init/     01-directories 02-database 03-config 04-backup   (first steps, in order)
#   runtime/  startup.sh (direct / maintenance), shutdown.sh (SIGTERM), persist.sh,
#             healthcheck.sh and ctl.sh (run by the engine and by pgbox)
#
# Every module defines module_main and may define module_validate and
# module_cleanup. DRY_RUN=1 runs every module_validate and changes nothing.
# The state (UNINITIALIZED INITIALIZING READY STARTING RUNNING MAINTENANCE
# STOPPING STOPPED ERROR) is written to /tmp/container-state; `state=X` log
# lines mirror it. Exit codes: 0 clean stop, 1 internal error, 2 bad
# configuration, 3 storage or permission problem, 4 PostgreSQL failed.
#
# Contract with pgbox (environment, none of it secret):
#   POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE (a read-only secret mount)
#   PGBOX_MOUNT          the data mount (default /var/lib/postgresql/data)
#   PGBOX_STORAGE_MODE   direct | volume | fallback
#   PGBOX_SAVE_INTERVAL  fallback: seconds between live saves (0 = only at stop)
#   PGBOX_SHUTDOWN_TIMEOUT  bound of the fast shutdown in seconds (30)
#   PGBOX_DISK_MIN_MB    health check: minimum free space on the data mount (100)
#   PGBOX_ENCODING, PGBOX_LOCALE, PGBOX_LC_COLLATE, PGBOX_LC_CTYPE, PGBOX_DATA_CHECKSUMS
#                        initdb's options for a new cluster (UTF8, C.UTF-8, initdb's default)
#   PGBOX_SKIP_INIT_SCRIPTS=1  a new cluster gets no init scripts (`pgbox upgrade`'s target)
#   PGBOX_READ_ONLY=1    every transaction read-only (`pgbox upgrade`'s source)
#   PGBOX_NO_SAVE=1      fallback: no save at stop (`pgbox upgrade`'s source)
#   PGBOX_MODE=patroni   [cluster]: Patroni runs PostgreSQL (runtime/patroni.sh)
set -Eeuo pipefail

PGBOX_LIB="${PGBOX_LIB:-/usr/local/lib/pgbox}"
# shellcheck source=runtime/common.sh
source "$PGBOX_LIB/runtime/common.sh"

CLEANUPS=()

# Source one module, validate it, run it (unless DRY_RUN), remember its cleanup.
run_module() {
    local file=$1 name
    name=$(basename "$file" .sh)
    unset -f module_main module_validate module_cleanup
    # shellcheck source=/dev/null
    source "$file"
    MODULE=$name
    if declare -F module_validate >/dev/null; then
        log_debug "validating"
        module_validate || fail "${VALIDATE_EXIT:-$EXIT_CONFIG}" "validation failed in $name"
    fi
    if [ "${DRY_RUN:-0}" = 1 ]; then
        log_info "dry run: $name validated, nothing changed"
        return 0
    fi
    if declare -F module_cleanup >/dev/null; then
        local fn="cleanup_${name//[^a-zA-Z0-9]/_}"
        eval "$(declare -f module_cleanup | sed "1s/module_cleanup/$fn/")"
        CLEANUPS+=("$fn")
    fi
    log_debug "running"
    module_main
}

run_cleanups() {
    local fn
    for fn in "${CLEANUPS[@]}"; do "$fn" || log_warn "cleanup $fn failed"; done
}

main() {
    MODULE=entrypoint
    mkdir -p "$RUN_DIR"
    if [ "${DRY_RUN:-0}" != 1 ]; then
        set_state UNINITIALIZED
    else
        log_info "DRY_RUN=1: validating only"
    fi
    local m
    for m in "$PGBOX_LIB"/init/[0-9][0-9]-*.sh; do
        # patroni mode: Patroni initialises or clones PGDATA and owns its postgresql.conf.
        if [ "${PGBOX_MODE:-direct}" = patroni ] && [ "$(basename "$m")" != 01-directories.sh ]; then
            continue
        fi
        run_module "$m"
    done
    # shutdown.sh installs the SIGTERM handler; startup.sh runs until stopped.
    run_module "$PGBOX_LIB/runtime/shutdown.sh"
    run_module "$PGBOX_LIB/runtime/startup.sh"
    if [ "${DRY_RUN:-0}" = 1 ]; then
        MODULE=entrypoint
        log_info "dry run complete: configuration is valid"
    fi
}

main "$@"
