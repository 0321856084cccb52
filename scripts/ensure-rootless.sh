#!/usr/bin/env bash
# Sets up rootless Podman for pgbox's tests (run as root): an unprivileged user with
# subordinate UID/GID ranges, its runtime folder, Podman's native overlay storage,
# its own `podman system service` on $XDG_RUNTIME_DIR/podman/podman.sock, and the
# offline base image loaded into its storage. Safe to run again.
set -euo pipefail

log() { printf 'ensure-rootless: %s\n' "$*" >&2; }
die() { printf 'ensure-rootless: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
USER_NAME="${PGBOX_ROOTLESS_USER:-pgboxtest}"
BASE_IMAGE="${PGBOX_SEED_IMAGE:-debian:bookworm-slim}"

command -v podman >/dev/null || die "podman is not installed (scripts/ensure-engine.sh installs it)"
# Rootless Podman needs what Debian's podman package only recommends: newuidmap and
# newgidmap (uidmap) for the user namespace, and slirp4netns for the network.
need=()
command -v newuidmap >/dev/null || need+=(uidmap)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$USER_NAME"
grep -q "^$USER_NAME:" /etc/subuid || echo "$USER_NAME:100000:65536" >>/etc/subuid
grep -q "^$USER_NAME:" /etc/subgid || echo "$USER_NAME:100000:65536" >>/etc/subgid
# slirp4netns (rootless networking) opens /dev/net/tun as the user.
mkdir -p /dev/net
[ -e /dev/net/tun ] || mknod /dev/net/tun c 10 200
chmod 666 /dev/net/tun
uid=$(id -u "$USER_NAME")
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
runtime="/run/user/$uid"
install -d -o "$USER_NAME" -g "$USER_NAME" -m 700 "$runtime"

as_user() { runuser -u "$USER_NAME" -- env HOME="$home" XDG_RUNTIME_DIR="$runtime" "$@"; }

conf="$home/.config/containers"
if [ ! -f "$conf/storage.conf" ]; then
    as_user mkdir -p "$conf"
    printf '[storage]\ndriver = "overlay"\n' | as_user tee "$conf/storage.conf" >/dev/null
    printf '[containers]\ndefault_ulimits = [\n  "nofile=10000:10000",\n  "nproc=1000:1000",\n]\n' |
        as_user tee "$conf/containers.conf" >/dev/null
    (cd "$home" && as_user podman system reset --force >/dev/null 2>&1) || true
fi

sock="$runtime/podman/podman.sock"
answers() { timeout 10 docker -H "unix://$sock" version >/dev/null 2>&1; }
if ! answers; then
    install -d -o "$USER_NAME" -g "$USER_NAME" -m 700 "$runtime/podman"
    rm -f "$sock"
    log "starting $USER_NAME's podman system service on $sock"
    cd "$home"
    setsid nohup runuser -u "$USER_NAME" -- env HOME="$home" XDG_RUNTIME_DIR="$runtime" \
        podman system service --time=0 "unix://$sock" >/var/log/pgbox-podman-rootless.log 2>&1 </dev/null &
    cd - >/dev/null
    for _ in $(seq 1 60); do
        answers && break
        sleep 0.5
    done
    answers || { tail -n 20 /var/log/pgbox-podman-rootless.log >&2 || true; die "rootless podman service did not answer"; }
fi
if ! (cd "$home" && as_user podman image exists "$BASE_IMAGE"); then
    log "loading $BASE_IMAGE into $USER_NAME's storage"
    docker save "$BASE_IMAGE" | (cd "$home" && as_user podman load -q >/dev/null)
fi
log "rootless podman ready for $USER_NAME (uid $uid) at $sock"
