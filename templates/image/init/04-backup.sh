#!/bin/bash
# init/04-backup.sh: archiving setup. pgbox's backups are logical (pg_dump through
# `pgbox backup`), so WAL archiving stays off; this step makes sure a stale
# archive_command from an old configuration cannot fill the disk unnoticed.
# shellcheck shell=bash

module_main() {
    local mode
    mode=$(run_as_postgres postgres -D "$PGDATA" -C archive_mode 2>/dev/null || echo unknown)
    if [ "$mode" = on ] || [ "$mode" = always ]; then
        log_warn "archive_mode is $mode in the cluster's configuration; make sure its archive_command works"
    else
        log_debug "WAL archiving off; backups are taken with pg_dump"
    fi
}
