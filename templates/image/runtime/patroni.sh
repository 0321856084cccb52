#!/bin/bash
# runtime/patroni.sh: the `patroni` startup mode ([cluster] in pgbox.toml). Patroni,
# not this entrypoint, initialises (or clones) PGDATA and runs PostgreSQL; the node's
# name and addresses come from PATRONI_* variables, the shared settings from
# /etc/pgbox/conf/patroni.yml, and the passwords from a 0600 file written here at each
# start from the secrets mount, so no password is in the environment or in argv.
# Sourced by startup.sh (run_patroni) and ctl.sh (patroni_api).
# shellcheck shell=bash
# shellcheck disable=SC2034 # MODULE is read by the logging helpers

PATRONI_DIR=$RUN_DIR/patroni
PATRONI_CONF_SRC=/etc/pgbox/conf/patroni.yml
SECRETS_DIR=${PGBOX_SECRETS_DIR:-/run/secrets/pgbox}

# The configuration folder Patroni reads: the shared file and the secrets part.
write_patroni_config() {
    install -d -o postgres -g postgres -m 0700 "$PATRONI_DIR"
    install -o postgres -g postgres -m 0600 "$PATRONI_CONF_SRC" "$PATRONI_DIR/10-pgbox.yml"
    local tmp
    tmp=$(mktemp "$PATRONI_DIR/.secrets.XXXXXX")
    chmod 0600 "$tmp"
    # JSON is YAML, and json.dumps escapes whatever the passwords hold.
    python3 - "$SECRETS_DIR" >"$tmp" <<'PY'
import json, sys
d = sys.argv[1]
def read(name):
    with open(f"{d}/{name}") as f:
        return f.readline().rstrip("\n")
print(json.dumps({
    "postgresql": {"authentication": {
        "superuser": {"password": read("postgres_password")},
        "replication": {"password": read("replication_password")},
        "rewind": {"password": read("rewind_password")},
    }},
    "restapi": {"authentication": {"password": read("patroni_api_password")}},
}))
PY
    chown postgres:postgres "$tmp"
    mv "$tmp" "$PATRONI_DIR/90-secrets.yml"
}

# Run Patroni; RUNNING once PostgreSQL accepts TCP on 127.0.0.1 (a replica after its
# base backup), on PGPORT where nodes share a network namespace (a kube pod). Patroni
# stops PostgreSQL and hands the leader key on at SIGTERM.
run_patroni() {
    MODULE=patroni
    set_state STARTING "patroni"
    write_patroni_config
    PG_STOP_SIGNAL=TERM
    setpriv --reuid=postgres --regid=postgres --init-groups -- \
        patroni "$PATRONI_DIR" &
    PG_PID=$!
    until pg_isready --host=127.0.0.1 --port="${PGPORT:-5432}" --timeout=1 --quiet; do
        alive "$PG_PID" || { wait "$PG_PID" || true; fail "$EXIT_POSTGRES" "Patroni exited during startup"; }
        sleep 0.2
    done
    set_state RUNNING
    local status=0
    wait "$PG_PID" || status=$?
    PG_PID=""
    fail "$EXIT_POSTGRES" "Patroni exited unexpectedly with status $status"
}

# pgbox-ctl patroni-api METHOD PATH [JSON]: Patroni's REST API on 127.0.0.1:8008 (or the
# port of PATRONI_RESTAPI_LISTEN, in a kube pod) with the API password read here (never
# in argv); prints the HTTP status, a newline, the body.
patroni_api() {
    local listen=${PATRONI_RESTAPI_LISTEN:-:8008}
    python3 - "$SECRETS_DIR/patroni_api_password" "${listen##*:}" "$@" <<'PY'
import base64, sys, urllib.request, urllib.error
pw_file, port, method, path = sys.argv[1:5]
body = sys.argv[5].encode() if len(sys.argv) > 5 else None
with open(pw_file) as f:
    pw = f.readline().rstrip("\n")
req = urllib.request.Request(f"http://127.0.0.1:{port}" + path, data=body, method=method)
req.add_header("Authorization", "Basic " + base64.b64encode(f"pgbox:{pw}".encode()).decode())
if body is not None:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        code, text = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    code, text = e.code, e.read().decode()
except Exception as e:
    print(f"0\n{e}")
    sys.exit(1)
print(f"{code}\n{text}")
PY
}
