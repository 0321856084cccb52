#!/bin/bash
# runtime/archive.sh: PostgreSQL's archive_command for [backup] pitr. Usage:
#   archive.sh PATH NAME   (archive_command = '... "%p" "%f"')
# Compresses the WAL file PATH with zstd into $PGBOX_WAL_ARCHIVE/NAME.zst, following
# the archive-command contract: exit 0 only once the file is durable (written to a
# temporary name, fsynced, linked into place without overwriting, the folder
# fsynced); a NAME.zst that already exists is success when it holds the same
# bytes and failure when it differs (never overwritten). A sha256 of the
# uncompressed segment goes beside it as NAME.sha256, for `backup verify --pitr`.
set -euo pipefail

src=$1
name=$2
dir=${PGBOX_WAL_ARCHIVE:-/var/lib/pgbox/wal}
final="$dir/$name.zst"
tmp="$dir/.$name.zst.tmp.$$"
trap 'rm -f "$tmp" "$tmp.sha256"' EXIT

sum=$(sha256sum <"$src" | cut -d' ' -f1)
if [ -e "$final" ]; then
    if [ "$(zstd -q -dc -- "$final" | sha256sum | cut -d' ' -f1)" = "$sum" ]; then
        exit 0
    fi
    echo "archive.sh: $final exists with different content; not overwriting it" >&2
    exit 1
fi
zstd -q -1 -c -- "$src" >"$tmp"
printf '%s  %s\n' "$sum" "$name" >"$tmp.sha256"
sync -- "$tmp" "$tmp.sha256"
# ln: fails instead of replacing a file another archiver put there meanwhile.
ln -- "$tmp" "$final"
mv -f -- "$tmp.sha256" "$dir/$name.sha256"
sync -- "$dir"
