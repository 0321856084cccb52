#!/bin/sh
# Restore a pgbox backup into a CloudNativePG cluster with `pg_restore -j`, then
# check that every table holds as many rows as the backup carries.
#
# Runs in the restore Job (restore-job.yaml) with the cluster's own image, so
# pg_restore matches the server's major. The backup is copied into IMPORT_DIR with
# `kubectl cp`, then `IMPORT_DIR/.ready` is created; the script waits for it.
# The credentials come from the mounted kubernetes.io/basic-auth Secret (files
# `username` and `password` in SECRET_DIR), never from the environment or argv.
#
# Environment: PGHOST, PGPORT, PGDATABASE, PGSSLMODE (libpq), BACKUP_FILE (name in
# IMPORT_DIR), RESTORE_JOBS (pg_restore -j, default 2), WAIT_SECONDS (default 3600),
# IMPORT_DIR (default /import), SECRET_DIR (default /etc/pgbox/app).
# Exit status: 0 restored and checked, 1 anything else (the reason is printed).
set -eu

IMPORT_DIR=${IMPORT_DIR:-/import}
SECRET_DIR=${SECRET_DIR:-/etc/pgbox/app}
JOBS=${RESTORE_JOBS:-2}
WAIT=${WAIT_SECONDS:-3600}

log() { printf '%s restore: %s\n' "$(date -u +%H:%M:%SZ)" "$*"; }
fail() {
    log "error: $*"
    exit 1
}

[ -n "${BACKUP_FILE:-}" ] || fail "BACKUP_FILE is empty: set it to the pgbox backup's file name"
case "$BACKUP_FILE" in
*/*) fail "BACKUP_FILE must be a file name in $IMPORT_DIR, not a path" ;;
*.age) fail "$BACKUP_FILE is encrypted: decrypt it with age -d before copying it" ;;
*.dump | *.dump.zst | *.dump.gz) ;;
*) fail "$BACKUP_FILE is not a custom-format pgbox backup (.dump, .dump.zst, .dump.gz); pg_restore -j needs one (pgbox backup --format custom)" ;;
esac
# An image without zstd takes the backup decompressed on the workstation instead.
case "$BACKUP_FILE" in
*.zst)
    if ! command -v zstd >/dev/null 2>&1; then
        BACKUP_FILE=${BACKUP_FILE%.zst}
        log "this image has no zstd: decompress the backup first (zstd -d) and copy $BACKUP_FILE instead"
    fi
    ;;
esac
file="$IMPORT_DIR/$BACKUP_FILE"

log "waiting for $file and $IMPORT_DIR/.ready (kubectl cp the backup, then touch .ready)"
waited=0
while [ ! -e "$IMPORT_DIR/.ready" ]; do
    [ "$waited" -lt "$WAIT" ] || fail "no $IMPORT_DIR/.ready after ${WAIT}s"
    sleep 1
    waited=$((waited + 1))
done
[ -s "$file" ] || fail "$file is missing or empty"

umask 077
work=$(mktemp -d "$IMPORT_DIR/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A password file for libpq, from the Secret; `:` and `\` escaped as .pgpass wants.
PGUSER=$(cat "$SECRET_DIR/username")
export PGUSER
esc() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g'; }
printf '*:*:*:%s:%s\n' "$(esc "$PGUSER")" "$(esc "$(cat "$SECRET_DIR/password")")" >"$work/pgpass"
PGPASSFILE="$work/pgpass"
export PGPASSFILE

# pg_restore -j needs a seekable custom-format file: decompress pgbox's outer layer.
case "$BACKUP_FILE" in
*.zst)
    zstd -q -dc "$file" >"$work/backup.dump" || fail "cannot decompress $BACKUP_FILE"
    dump="$work/backup.dump"
    ;;
*.gz)
    gzip -dc "$file" >"$work/backup.dump" || fail "cannot decompress $BACKUP_FILE"
    dump="$work/backup.dump"
    ;;
*) dump=$file ;;
esac

psql -XAtq -c 'SELECT 1' >/dev/null || fail "cannot connect to $PGHOST:${PGPORT:-5432} as $PGUSER"
tables=$(psql -XAtq -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'")
[ "$tables" = 0 ] || fail "database $PGDATABASE already has $tables tables: restore only into a new, empty cluster"

# Row counts the backup carries: one line per row inside each COPY block.
{ pg_restore --data-only -f - "$dump" || echo failed >"$work/read-failed"; } | awk '
    /^COPY / { table = $2; rows = 0; inside = 1; next }
    inside && $0 == "\\." { print table, rows; inside = 0; next }
    inside { rows++ }
' | sort >"$work/expected"
[ ! -e "$work/read-failed" ] || fail "cannot read the data in $BACKUP_FILE"

# Extensions are created by the Cluster (bootstrap.initdb.postInitApplicationSQL)
# as the superuser; the application owner restores everything else.
pg_restore -l "$dump" | grep -v -E '^[0-9]+; [0-9]+ [0-9]+ (EXTENSION|COMMENT - EXTENSION) ' >"$work/toc"
log "restoring $BACKUP_FILE into $PGDATABASE on $PGHOST with pg_restore -j $JOBS"
pg_restore -j "$JOBS" --no-owner --no-privileges --exit-on-error -L "$work/toc" \
    -d "$PGDATABASE" "$dump" || fail "pg_restore failed (above); the cluster is not complete: recreate it before trying again"

# The same count, table by table, in the new cluster.
bad=0
total=0
while read -r table rows; do
    got=$(psql -XAtq -c "SELECT count(*) FROM $table") || fail "cannot count $table"
    total=$((total + got))
    if [ "$got" != "$rows" ]; then
        log "mismatch: $table has $got rows, the backup has $rows"
        bad=$((bad + 1))
    fi
done <"$work/expected"
[ "$bad" = 0 ] || fail "$bad tables differ from the backup"
log "ok: $(wc -l <"$work/expected" | tr -d ' ') tables, $total rows, counts match the backup"
