#!/bin/sh
# pgbox pooler entrypoint: run PgBouncer in the foreground as `postgres`.
#
# The auth file (the pooler role's generated secret, the only file holding it) and the
# TLS material come in read-only mounts owned by the host user; PgBouncer reads them as
# `postgres`, on start and on every RELOAD, so they are copied once to a folder only
# `postgres` can read. Nothing secret is printed or passed as an argument.
set -eu

src_auth=/run/secrets/pgbox-pooler/auth
conf=/etc/pgbox/pooler/pgbouncer.ini
run=/run/pgbox-pooler

[ -r "$src_auth" ] || { echo "pgbox-pooler: missing auth file $src_auth" >&2; exit 2; }
[ -r "$conf" ] || { echo "pgbox-pooler: missing config $conf" >&2; exit 2; }

umask 077
install -d -o postgres -g postgres -m 0700 "$run"
install -o postgres -g postgres -m 0600 "$src_auth" "$run/auth"
if [ -r /etc/pgbox/tls/server.crt ] && [ -r /etc/pgbox/tls/server.key ]; then
    install -o postgres -g postgres -m 0644 /etc/pgbox/tls/server.crt "$run/server.crt"
    install -o postgres -g postgres -m 0600 /etc/pgbox/tls/server.key "$run/server.key"
fi
echo "pgbox-pooler: starting $(pgbouncer --version | head -n 1)"
exec setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer "$conf"
