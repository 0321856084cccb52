#!/bin/bash
# runtime/persist.sh: fallback-mode persistence of PGDATA as <mount>/pgsql.tar.zst.
#
# A save writes a temporary file, fsyncs it, checks it, keeps the current tarball
# as pgsql.tar.zst.prev and renames the new one into place, so the mount always
# holds at least one complete tarball. A restore checks the tarball (zstd frame
# checksums and the tar listing) before it touches anything, and stops the start
# with an error rather than initialise an empty cluster over the user's data.
# Unpack by hand with: zstd -dc pgsql.tar.zst | tar -xf -
#
# Which copy is newest: the container's own PGDATA survives a stop, a crash and a
# kill of the container (not its removal). It is at least as new as the tarball
# when the tarball is the one it was last saved to or restored from (SAVED_RECORD:
# size, mtime and a hash of the file's end); then a start uses it (after crash recovery) and saves it
# again. A tarball that is not that one was put there by someone else (a restore
# by hand): it wins, and the container's copy is kept aside in the data folder as
# pgsql-replaced-<time>.tar.zst. A container cluster that cannot start is kept as
# pgsql-unstartable-<time>.tar.zst and the tarball is used. pgbox never deletes
# these kept copies; `pgbox up` and `pgbox status` list them.
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
    # Callers empty PGDATA first (a cluster in it is kept aside, never dropped).
    if [ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]; then
        rm -rf "$stage"
        fail "$EXIT_INTERNAL" "refusing to restore over a non-empty $PGDATA"
    fi
    rmdir "$PGDATA" 2>/dev/null || true
    mv "$stage" "$PGDATA"
    record_tarball
    rm -f "$UNSAVED_MARK"
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
    # Both names stay valid until the rename is done: a crash in between is no "replacement".
    write_record "$(tarball_id "$TARBALL")" "$(tarball_id "$tmp")"
    mv -f "$tmp" "$TARBALL"
    sync "$PGBOX_MOUNT"
    record_tarball
}

# Replace SAVED_RECORD with the given identities in one rename: a kill while it is
# written must never leave it empty, which would read as "the tarball was replaced".
write_record() {
    printf '%s\n' "$@" | grep -v '^$' >"$SAVED_RECORD.tmp"
    mv -f "$SAVED_RECORD.tmp" "$SAVED_RECORD"
}

# The identity of a tarball: size, mtime and a hash of its end (where zstd keeps the
# frame checksum). No inode: shared-folder mounts (macOS, Windows) may not keep them.
tarball_id() {
    [ -f "$1" ] || return 0
    printf '%s:%s\n' "$(stat -c '%s:%Y' "$1")" "$(tail -c 65536 "$1" | sha256sum | cut -c1-16)"
}

record_tarball() {
    write_record "$(tarball_id "$TARBALL")"
}

# True when TARBALL is the one PGDATA was last saved to or restored from.
tarball_is_ours() {
    local id
    id=$(tarball_id "$TARBALL")
    [ -n "$id" ] && [ -r "$SAVED_RECORD" ] && grep -qxF "$id" "$SAVED_RECORD"
}

# PGDATA may hold writes the tarball lacks; the reason is what pgbox shows.
mark_unsaved() {
    printf '%s\n' "$1" >"$UNSAVED_MARK"
}

# The last line of a tool's error output, for a log line.
last_error_line() {
    tr '\r' '\n' <"$1" | grep -v '^[[:space:]]*$' | tail -n 1 | sed 's/[[:space:]]*$//'
}

# Archive PGDATA into the data folder under a name pgbox never deletes, then empty
# PGDATA. Prints the archive's path. Fails (PGDATA untouched) when it cannot be written.
keep_aside() {
    local kind=$1 stamp kept errfile
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    kept="$PGBOX_MOUNT/pgsql-$kind-$stamp.tar.zst"
    errfile=$(mktemp)
    if ! tar -C "$PGDATA" --exclude=./postmaster.pid -cf - . 2>"$errfile" | zstd -q -T0 -3 -o "$kept.tmp" 2>>"$errfile" ||
        ! sync "$kept.tmp"; then
        log_error "writing $kept failed: $(last_error_line "$errfile")"
        rm -f "$kept.tmp" "$errfile"
        return 1
    fi
    rm -f "$errfile"
    chown --reference="$PGBOX_MOUNT" "$kept.tmp" 2>/dev/null || true
    chmod 600 "$kept.tmp"
    mv "$kept.tmp" "$kept"
    sync "$PGBOX_MOUNT"
    find "$PGDATA" -mindepth 1 -delete
    printf '%s\n' "$kept"
}

# Save a stopped cluster: tar of PGDATA, compressed. On failure the reason is in
# UNSAVED_MARK, and PGDATA (the only up-to-date copy) is left as it is.
save_offline() {
    local t0=$EPOCHREALTIME tmp="$PGBOX_MOUNT/.pgsql.tar.zst.tmp-$$" errfile reason
    [ -s "$PGDATA/PG_VERSION" ] || { log_warn "no cluster in $PGDATA, nothing to save"; return 0; }
    if ! run_as_postgres pg_controldata "$PGDATA" 2>/dev/null | grep -q 'cluster state: *shut down'; then
        log_warn "the cluster was not shut down cleanly; saving it anyway (PostgreSQL recovers it on start)"
    fi
    errfile=$(mktemp)
    (
        flock 9
        if ! tar -C "$PGDATA" --exclude=./postmaster.pid --exclude=./postmaster.opts -cf - . 2>>"$errfile" |
            zstd -q -T0 -3 -o "$tmp" 2>>"$errfile"; then
            rm -f "$tmp"
            log_error "writing $tmp failed: $(last_error_line "$errfile"); the previous tarball is untouched"
            exit 1
        fi
        commit_tarball "$tmp" 2>>"$errfile"
    ) 9>"$SAVE_LOCK" || {
        reason=$(last_error_line "$errfile")
        rm -f "$errfile"
        mark_unsaved "saving pgsql.tar.zst in the data folder failed: ${reason:-see the container log}"
        return 1
    }
    rm -f "$errfile" "$UNSAVED_MARK"
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

# A consistent copy of the running cluster on stdout (pg_basebackup tar, zstd), for
# `pgbox save -o PATH`: it writes nowhere in the container or the data folder.
save_stream() {
    run_as_postgres pg_basebackup --host=/var/run/postgresql --username="$POSTGRES_USER" \
        --pgdata=- --format=tar --wal-method=fetch --checkpoint=fast --no-password |
        zstd -q -T0 -3 -c
}
