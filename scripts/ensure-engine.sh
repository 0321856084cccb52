#!/usr/bin/env bash
# Makes sure a container engine answers and the offline base image exists.
#
# pgbox's e2e tests drive a real engine. On a machine with none running this
# script starts one: it installs Debian's docker.io when dockerd is missing and
# we are root, starts dockerd in the background, and waits for the socket. No
# registry can be reached here, so the base image named in pgbox's defaults
# (debian:bookworm-slim) is seeded from a debootstrap of Debian bookworm when
# the engine does not have it yet. Safe to run again: every step checks first.
set -euo pipefail

log() { printf 'ensure-engine: %s\n' "$*" >&2; }
die() { printf 'ensure-engine: error: %s\n' "$*" >&2; exit 1; }

BASE_IMAGE="${PGBOX_SEED_IMAGE:-debian:bookworm-slim}"
SUITE="${PGBOX_SEED_SUITE:-bookworm}"
MIRROR="${PGBOX_SEED_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_LOG="${PGBOX_DOCKERD_LOG:-/var/log/pgbox-dockerd.log}"

is_root() { [ "$(id -u)" = 0 ]; }

apt_updated=0
apt_install() {
    is_root || die "missing $*; install it (apt-get install $*) or run this script as root"
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# Host tools the tests use besides the engine itself.
need=()
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time)
command -v crontab >/dev/null 2>&1 || need+=(cron)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v catatonit >/dev/null 2>&1 || need+=(catatonit)
if [ "${#need[@]}" -gt 0 ]; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    apt_install "${need[@]}"
fi

if engine_answers; then
    log "engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
else
    [ -n "${DOCKER_HOST:-}" ] && die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
    is_root || die "no engine answers at /var/run/docker.sock; start one (sudo dockerd &) or rerun as root"
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: the daemon outlives this script and ignores the caller's Ctrl-C.
    setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        engine_answers && break
        sleep 0.5
    done
    engine_answers || { tail -n 20 "$DOCKERD_LOG" >&2 || true; die "dockerd did not answer within 60 s"; }
    log "engine answers ($(docker version --format '{{.Server.Version}}'))"
fi

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE present"
else
    is_root || die "base image $BASE_IMAGE is missing and debootstrap needs root; rerun as root"
    root=$(mktemp -d /var/tmp/pgbox-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    log "building $BASE_IMAGE from debootstrap $SUITE (about a minute)"
    debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >/dev/null
    # Trim what a -slim image does not carry, and leave apt ready to use.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL org.pgbox.seeded=debootstrap-$SUITE" \
        - "$BASE_IMAGE" >/dev/null
    log "base image $BASE_IMAGE built"
fi

# Podman (rootful, through its CLI) for the generated podman and kube files. This
# host's hard limits are below Podman's default ulimits, so lower them, and give
# Podman the same offline base image as the engine.
if command -v podman >/dev/null 2>&1; then
    conf=/etc/containers/containers.conf
    if is_root && ! grep -q '^default_ulimits' "$conf" 2>/dev/null; then
        mkdir -p /etc/containers
        printf '[containers]\ndefault_ulimits = [\n  "nofile=10000:10000",\n  "nproc=1000:1000",\n]\n' >>"$conf"
        log "podman: default ulimits lowered in $conf"
    fi
    if ! podman image exists "$BASE_IMAGE" 2>/dev/null; then
        log "podman: loading $BASE_IMAGE from the engine"
        docker save "$BASE_IMAGE" | podman load -q >/dev/null
    fi
fi

# Rootful Podman's Docker-compatible API, for the tests that run pgbox against Podman.
PODMAN_SOCK=/run/podman/podman.sock
podman_answers() { timeout 10 docker -H "unix://$PODMAN_SOCK" version >/dev/null 2>&1; }
if command -v podman >/dev/null 2>&1 && is_root && ! podman_answers; then
    mkdir -p /run/podman
    rm -f "$PODMAN_SOCK"
    log "starting podman system service on $PODMAN_SOCK (log: /var/log/pgbox-podman.log)"
    setsid nohup podman system service --time=0 "unix://$PODMAN_SOCK" >/var/log/pgbox-podman.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        podman_answers && break
        sleep 0.5
    done
    podman_answers || { tail -n 20 /var/log/pgbox-podman.log >&2 || true; die "podman system service did not answer within 30 s"; }
fi
