#!/usr/bin/env bash
# Makes sure a container engine answers and the offline base images exist.
#
# pgbox's e2e tests drive a real engine. On a machine with none running this
# script starts one: it installs Debian's docker.io when dockerd is missing and
# we are root, starts dockerd in the background, and waits for the socket. No
# registry can be reached here, so the base image of each PostgreSQL major that
# pgbox knows (config::KNOWN_MAJORS) is seeded from a debootstrap of the Debian
# suite that ships it, when the engine does not have it yet:
#   debian:bookworm-slim  bookworm  PostgreSQL 15
#   debian:trixie-slim    trixie    PostgreSQL 17
#   debian:forky-slim     forky     PostgreSQL 18
# The missing ones are debootstrapped in parallel. Each is also loaded into
# rootful Podman. Safe to run again: every step checks first.
set -euo pipefail

log() { printf 'ensure-engine: %s\n' "$*" >&2; }
die() { printf 'ensure-engine: error: %s\n' "$*" >&2; exit 1; }

# image|suite|debootstrap script (empty: the suite's own)|stale (1: the archive's
# Release file may be past its Valid-Until, so apt in the image must not check it).
# bookworm's debootstrap has no forky script; sid's works for forky. The forky
# Release file served here is past its Valid-Until; only this seeded image gets the
# apt setting that ignores it (official images pulled by users have a fresh archive).
forky_script=""
[ -e /usr/share/debootstrap/scripts/forky ] || forky_script=/usr/share/debootstrap/scripts/sid
SEEDS=(
    "${PGBOX_SEED_IMAGE:-debian:bookworm-slim}|${PGBOX_SEED_SUITE:-bookworm}||0"
    "debian:trixie-slim|trixie||0"
    "debian:forky-slim|forky|$forky_script|1"
)
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
command -v python3 >/dev/null 2>&1 || need+=(python3) # scripts/bench-cluster.sh
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

# Debootstrap one suite into $work/NAME and import it as IMAGE; the output goes to
# $work/NAME.log, shown when it fails. Runs in the background, one per image.
seed_image() {
    local image=$1 suite=$2 script=$3 stale=$4 root
    root="$work/${image//[:\/]/_}"
    mkdir -p "$root"
    # shellcheck disable=SC2086 # $script is empty or one path
    debootstrap --variant=minbase "$suite" "$root" "$MIRROR" $script
    # Trim what a -slim image does not carry, and leave apt ready to use.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    if [ "$stale" = 1 ]; then
        printf '%s\n' \
            '// Seeded by pgbox scripts/ensure-engine.sh: the archive served here is past' \
            '// its Valid-Until; official images do not need this.' \
            'Acquire::Check-Valid-Until "false";' \
            >"$root/etc/apt/apt.conf.d/99pgbox-snapshot"
    fi
    tar -C "$root" -c . | docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL org.pgbox.seeded=debootstrap-$suite" \
        - "$image"
    rm -rf --one-file-system "$root"
}

missing=()
for seed in "${SEEDS[@]}"; do
    IFS='|' read -r image _ <<<"$seed"
    if docker image inspect "$image" >/dev/null 2>&1; then
        log "base image $image present"
    else
        missing+=("$seed")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    is_root || die "base images are missing and debootstrap needs root; rerun as root"
    work=$(mktemp -d /var/tmp/pgbox-seed.XXXXXX)
    pids=() names=()
    # On any exit: stop the debootstraps still running (only those: dockerd was started
    # from this shell too), then remove their work. --one-file-system: never descend
    # into a /proc or /sys that a killed debootstrap left mounted.
    cleanup_seeds() {
        if [ "${#pids[@]}" -gt 0 ]; then
            kill "${pids[@]}" 2>/dev/null || true
            wait "${pids[@]}" 2>/dev/null || true
        fi
        rm -rf --one-file-system "$work"
    }
    trap cleanup_seeds EXIT
    for seed in "${missing[@]}"; do
        IFS='|' read -r image suite script stale <<<"$seed"
        msg="building $image from debootstrap $suite${script:+ (script ${script##*/})}"
        [ "$stale" = 1 ] && msg="$msg, with apt's Valid-Until check off (99pgbox-snapshot)"
        log "$msg (about a minute)"
        seed_image "$image" "$suite" "$script" "$stale" >"$work/${image//[:\/]/_}.log" 2>&1 &
        pids+=("$!")
        names+=("$image")
    done
    failed=0
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then
            log "base image ${names[$i]} built"
        else
            failed=1
            log "building ${names[$i]} failed; its log ends:"
            tail -n 20 "$work/${names[$i]//[:\/]/_}.log" >&2 || true
        fi
    done
    [ "$failed" = 0 ] || die "a base image could not be built (see above)"
    cleanup_seeds
    trap - EXIT
fi

# Podman (rootful, through its CLI) for the generated podman and kube files. This
# host's hard limits are below Podman's default ulimits, so lower them, and give
# Podman the same offline base images as the engine.
if command -v podman >/dev/null 2>&1; then
    conf=/etc/containers/containers.conf
    if is_root && ! grep -q '^default_ulimits' "$conf" 2>/dev/null; then
        mkdir -p /etc/containers
        printf '[containers]\ndefault_ulimits = [\n  "nofile=10000:10000",\n  "nproc=1000:1000",\n]\n' >>"$conf"
        log "podman: default ulimits lowered in $conf"
    fi
    for seed in "${SEEDS[@]}"; do
        IFS='|' read -r image _ <<<"$seed"
        if ! podman image exists "$image" 2>/dev/null; then
            log "podman: loading $image from the engine"
            docker save "$image" | podman load -q >/dev/null
        fi
    done
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
