#!/bin/bash
# init/01-directories.sh: the data mount, PGDATA and the socket folder, with the right owners.
# Direct and volume modes keep PGDATA on the mount, owned by postgres with mode 700.
# Fallback mode keeps PGDATA in the container and only the tarball on the mount.
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE, VALIDATE_EXIT and the paths are read by other modules

module_validate() {
    VALIDATE_EXIT=$EXIT_CONFIG
    require_one_of PGBOX_STORAGE_MODE "$PGBOX_STORAGE_MODE" direct volume fallback || return 1
    if [ "$(id -u)" != 0 ]; then
        VALIDATE_EXIT=$EXIT_STORAGE
        log_error "the entrypoint must start as root to prepare $PGBOX_MOUNT"
        return 1
    fi
    if [ ! -d "$PGBOX_MOUNT" ]; then
        if [ "${DRY_RUN:-0}" = 1 ]; then
            log_info "would create $PGBOX_MOUNT"
            return 0
        fi
        mkdir -p "$PGBOX_MOUNT"
    fi
    local pg_uid owner
    pg_uid=$(id -u postgres)
    owner=$(stat -c %u "$PGBOX_MOUNT")
    if [ "$PGBOX_STORAGE_MODE" != fallback ] && [ "$owner" != "$pg_uid" ] && [ "$owner" != 0 ]; then
        VALIDATE_EXIT=$EXIT_STORAGE
        log_error "$PGBOX_MOUNT is owned by uid $owner but postgres runs as uid $pg_uid; on the host run: chown -R $pg_uid:$(id -g postgres) <data folder> && chmod 700 <data folder>, or use storage mode fallback"
        return 1
    fi
    if [ "$PGBOX_STORAGE_MODE" != fallback ] && [ "$owner" = 0 ] && [ -n "$(ls -A "$PGBOX_MOUNT")" ]; then
        VALIDATE_EXIT=$EXIT_STORAGE
        log_error "$PGBOX_MOUNT is owned by root and not empty; it is not a PostgreSQL data folder pgbox prepared"
        return 1
    fi
    # PGBOX_NO_SAVE=1 (`pgbox upgrade`'s read-only source) never writes the tarball.
    if [ "$PGBOX_STORAGE_MODE" = fallback ] && [ "${PGBOX_NO_SAVE:-0}" != 1 ] && [ ! -w "$PGBOX_MOUNT" ]; then
        VALIDATE_EXIT=$EXIT_STORAGE
        log_error "$PGBOX_MOUNT is not writable; the fallback tarball cannot be saved there"
        return 1
    fi
    log_debug "mount $PGBOX_MOUNT owned by uid $owner, postgres is uid $pg_uid"
}

module_main() {
    local pg_uid owner
    pg_uid=$(id -u postgres)
    owner=$(stat -c %u "$PGBOX_MOUNT")
    if [ "$PGBOX_STORAGE_MODE" = fallback ]; then
        log_warn "⚠️ UID mismatch (mount owned by uid $owner, postgres is uid $pg_uid). Using isolated fallback database instance at $PGDATA, persisted as $TARBALL"
        mkdir -p "$PGDATA"
    else
        # An empty root-owned mount is a fresh named volume or mount point: take it.
        [ "$owner" = "$pg_uid" ] || chown postgres:postgres "$PGBOX_MOUNT"
        log_info "✅ PGDATA set to new default: $PGDATA"
        # patroni mode: PGDATA is a folder on the mount (see common.sh).
        [ -d "$PGDATA" ] || install -d -o postgres -g postgres -m 700 "$PGDATA"
    fi
    secure_path "$PGDATA" 700
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    install -d -m 0755 "$RUN_DIR"
    remove_stale_locks
}

# The entrypoint is starting, so no PostgreSQL of this container runs: lock files a
# killed one left are stale. PostgreSQL would take one whose pid is now another
# live process of this container for a running server and refuse to start (and a
# fallback cluster that does not start is set aside for the older tarball). Only
# what belongs to this container alone is touched: the socket folder, and the
# ephemeral PGDATA of fallback mode (a bind-mounted PGDATA could be shared).
remove_stale_locks() {
    rm -f /var/run/postgresql/.s.PGSQL.*.lock /var/run/postgresql/.s.PGSQL.[0-9]*
    if [ "$PGBOX_STORAGE_MODE" = fallback ]; then
        rm -f "$PGDATA/postmaster.pid"
    fi
}
