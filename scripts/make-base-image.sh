#!/usr/bin/env bash
# Make the stack's base image without a registry: a minimal Debian bookworm root filesystem
# (debootstrap) holding python3 (3.11) with venv, redis-server, nginx and the PostgreSQL server (the
# Swarm stack's database, issue #12), imported into the engine.
#
#   bash scripts/make-base-image.sh [TAG] [MIRROR]     (default ragctl-base:bookworm, deb.debian.org)
#
# Needs root, debootstrap (apt-get install debootstrap) and a reachable Debian mirror (an internal
# one on a closed network).  Skips the work when TAG already exists; FORCE=1 rebuilds it.
set -euo pipefail
tag="${1:-ragctl-base:bookworm}"
mirror="${2:-http://deb.debian.org/debian}"
# The base's layout version (the io.ragctl.base label): 2 added PostgreSQL, 3 tesseract.  An older
# base under the same tag is made again.
version=3
if [ "${FORCE:-0}" != 1 ] && [ "$(docker image inspect -f '{{ index .Config.Labels "io.ragctl.base" }}' "$tag" 2>/dev/null)" = "$version" ]; then
    echo "$tag exists (FORCE=1 to rebuild)"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 4; }
rootfs="$(mktemp -d /tmp/ragctl-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,redis-server,nginx-light,postgresql-15,tesseract-ocr,tesseract-ocr-kor,tesseract-ocr-eng,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# The packages' own services never start in a container: the compose file runs each command itself.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL io.ragctl.base=$version" - "$tag" >/dev/null
echo "made $tag"
