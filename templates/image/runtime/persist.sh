#!/bin/bash
# runtime/persist.sh: fallback-mode persistence of PGDATA as <mount>/pgsql.tar.zst.
#
# A save writes a temporary file, fsyncs it, checks it, keeps the current tarball
# as pgsql.tar.zst.prev and renames the new one into place, so the mount always
# holds at least one complete tarball. A restore checks the tarball (zstd frame
# checksums and the tar listing) before it touches anything, and stops the start
# with an error rather than initialise an empty cluster over the user's data.
# Unpack by hand with: zstd -dc pgsql.tar.zst | tar -xf -
# shellcheck shell=bash

SAVE_LOCK="$RUN_DIR/save.lock"

# Check a tarball without unpacking it, in one pass: zstd verifies its frame
# checksums while decompressing, tar walks the archive, and PG_VERSION must be in it.
verify_tarball() {
    local file=$1 errfile listfile out rc
    errfile=$(mktemp)
    listfile=$(mktemp)
    # With pipefail, a failure anywhere takes the || branch, where PIPESTATUS says which.
    zstd -q -dc "$file" 2>"$errfile" | tar -tf - >"$listfile" 2>>"$errfile" && rc=(0 0) || rc=("${PIPESTATUS[@]}")
    out=$(tr '\r' '\n' <"$errfile" | grep -v '^[[:space:]]*$' | tail -n 1)
    rm -f "$errfile"
    local found=0
    grep -qxE '(\./)?PG_VERSION' "$listfile" && found=1
    rm -f "$listfile"
    if [ "${rc[0]}" != 0 ]; then
        log_error "$file is corrupt or truncated: ${out:-zstd check failed}"
        return 1
    fi
    if [ "${rc[1]:-1}" != 0 ]; then
        log_error "$file holds no valid tar archive: ${out:-tar failed}"
        return 1
    fi
    if [ "$found" != 1 ]; then
        log_error "$file holds no PostgreSQL cluster (no PG_VERSION inside)"
        return 1
    fi
}

DAMAGED_TARBALL="refusing to start from a damaged tarball; both pgsql.tar.zst and pgsql.tar.zst.prev are left untouched (to try the previous one, in the data folder: mv pgsql.tar.zst pgsql.tar.zst.bad && cp pgsql.tar.zst.prev pgsql.tar.zst)"

# Unpack into a staging folder in one pass (zstd checks its checksums on the way);
# only a complete, checked cluster replaces PGDATA.
restore_tarball() {
    local file=$1 t0=$EPOCHREALTIME stage="$PGDATA.restore" errfile out
    rm -rf "$stage"
    mkdir -p "$stage"
    secure_path "$stage" 700
    errfile=$(mktemp)
    if ! zstd -q -dc "$file" 2>"$errfile" | run_as_postgres tar -xf - -C "$stage" 2>>"$errfile"; then
        out=$(tr '\r' '\n' <"$errfile" | grep -v '^[[:space:]]*$' | tail -n 1)
        rm -rf "$stage" "$errfile"
        log_error "$file is corrupt or truncated: ${out:-unpacking failed}"
        fail "$EXIT_STORAGE" "$DAMAGED_TARBALL"
    fi
    rm -f "$errfile"
    if [ ! -s "$stage/PG_VERSION" ]; then
        rm -rf "$stage"
        log_error "$file holds no PostgreSQL cluster (no PG_VERSION inside)"
        fail "$EXIT_STORAGE" "$DAMAGED_TARBALL"
    fi
    if [ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]; then
        # Left by a start/stop of this same container; the tarball is the source of truth.
        rm -rf "$PGDATA.stale"
        mv "$PGDATA" "$PGDATA.stale"
        log_warn "moved the previous ephemeral PGDATA aside to $PGDATA.stale"
    else
        rmdir "$PGDATA" 2>/dev/null || true
    fi
    mv "$stage" "$PGDATA"
    # pg_basebackup tarballs carry a backup_label: PostgreSQL recovers from it on start.
    log_info "restored PGDATA from $file ($(du -sh "$file" | cut -f1)) in $(elapsed_since "$t0")s"
}

# Move a finished temporary tarball into place, keeping the current one as .prev.
commit_tarball() {
    local tmp=$1
    sync "$tmp"
    if ! verify_tarball "$tmp"; then
        rm -f "$tmp"
        return 1
    fi
    chown --reference="$PGBOX_MOUNT" "$tmp" 2>/dev/null || true
    chmod 600 "$tmp"
    if [ -e "$TARBALL" ]; then
        ln -f "$TARBALL" "$TARBALL.prev.tmp" 2>/dev/null || cp -p "$TARBALL" "$TARBALL.prev.tmp"
        mv -f "$TARBALL.prev.tmp" "$TARBALL.prev"
    fi
    mv -f "$tmp" "$TARBALL"
    sync "$PGBOX_MOUNT"
}

# Save a stopped cluster: tar of PGDATA, compressed.
save_offline() {
    local t0=$EPOCHREALTIME tmp="$PGBOX_MOUNT/.pgsql.tar.zst.tmp-$$"
    [ -s "$PGDATA/PG_VERSION" ] || { log_warn "no cluster in $PGDATA, nothing to save"; return 0; }
    if ! run_as_postgres pg_controldata "$PGDATA" 2>/dev/null | grep -q 'cluster state: *shut down'; then
        log_warn "the cluster was not shut down cleanly; saving it anyway (PostgreSQL recovers it on start)"
    fi
    (
        flock 9
        if ! tar -C "$PGDATA" --exclude=./postmaster.pid --exclude=./postmaster.opts -cf - . |
            zstd -q -T0 -3 -o "$tmp"; then
            rm -f "$tmp"
            log_error "writing $tmp failed; the previous tarball is untouched"
            exit 1
        fi
        commit_tarball "$tmp"
    ) 9>"$SAVE_LOCK" || return 1
    log_info "saved PGDATA to $TARBALL ($(du -sh "$TARBALL" | cut -f1)) in $(elapsed_since "$t0")s"
}

# Save a running cluster consistently with pg_basebackup (tar format, WAL included).
save_live() {
    local t0=$EPOCHREALTIME tmp="$PGBOX_MOUNT/.pgsql.tar.zst.tmp-$$"
    (
        flock 9
        if ! run_as_postgres pg_basebackup --host=/var/run/postgresql --username="$POSTGRES_USER" \
            --pgdata=- --format=tar --wal-method=fetch --checkpoint=fast --no-password |
            zstd -q -T0 -3 -o "$tmp"; then
            rm -f "$tmp"
            log_error "pg_basebackup failed; the previous tarball is untouched"
            exit 1
        fi
        commit_tarball "$tmp"
    ) 9>"$SAVE_LOCK" || return 1
    log_info "saved a live copy to $TARBALL ($(du -sh "$TARBALL" | cut -f1)) in $(elapsed_since "$t0")s"
}
