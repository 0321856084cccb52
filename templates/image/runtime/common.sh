#!/bin/bash
# runtime/common.sh: paths, state and failure handling shared by the entrypoint,
# the health check and pgbox-ctl. Sources the utils.
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE, VALIDATE_EXIT and the paths are read by other modules

PGBOX_LIB="${PGBOX_LIB:-/usr/local/lib/pgbox}"
# shellcheck source=utils/logging.sh
source "$PGBOX_LIB/utils/logging.sh"
# shellcheck source=utils/validation.sh
source "$PGBOX_LIB/utils/validation.sh"
# shellcheck source=utils/security.sh
source "$PGBOX_LIB/utils/security.sh"

STATE_FILE=/tmp/container-state
RUN_DIR=/run/pgbox
MAINTENANCE_FLAG=$RUN_DIR/maintenance
PGBOX_MOUNT="${PGBOX_MOUNT:-/var/lib/postgresql/data}"
PGBOX_STORAGE_MODE="${PGBOX_STORAGE_MODE:-direct}"
TARBALL="$PGBOX_MOUNT/pgsql.tar.zst"

# PGDATA: the mount itself, or an ephemeral folder in fallback mode, or (patroni mode)
# a folder on the mount, since Patroni renames or removes a data folder it must
# rebuild, which a mount point refuses.
if [ "${PGBOX_MODE:-direct}" = patroni ]; then
    PGDATA="$PGBOX_MOUNT/pgdata"
elif [ "$PGBOX_STORAGE_MODE" = fallback ]; then
    PGDATA="/tmp/pgdata-ephemeral-${HOSTNAME:-pgbox}"
else
    PGDATA="$PGBOX_MOUNT"
fi
export PGDATA PGBOX_MOUNT PGBOX_STORAGE_MODE

# First-start initialisation happens in this folder inside PGDATA and is moved into
# place with PG_VERSION last: PG_VERSION at PGDATA's root means a complete cluster.
INIT_STAGE="$PGDATA/.pgbox-initdb"

# Fallback bookkeeping, in the container's own filesystem beside the ephemeral PGDATA.
# UNSAVED_MARK exists (holding the reason) while PGDATA may hold writes the tarball
# lacks; pgbox reads it from a stopped container before it removes one. SAVED_RECORD
# names the tarball PGDATA was last saved to or restored from (size:mtime:hash of its end).
UNSAVED_MARK=/tmp/pgbox-unsaved
SAVED_RECORD=/tmp/pgbox-saved-tarball

set_state() {
    printf '%s\n' "$1" >"$STATE_FILE"
    log_info "state=$1${2:+ ($2)}"
}

current_state() {
    cat "$STATE_FILE" 2>/dev/null || echo UNKNOWN
}

fail() {
    local code=$1
    shift
    set_state ERROR "$*"
    log_error "$*"
    exit "$code"
}

# True while the process runs; kill -0 also succeeds on unreaped zombies.
alive() {
    local _pid _comm state
    [ -r "/proc/$1/stat" ] || return 1
    read -r _pid _comm state _ <"/proc/$1/stat" || return 1
    [ "$state" != Z ]
}

postmaster_pid() {
    head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null || true
}
