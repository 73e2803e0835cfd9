#!/bin/sh
# Install the Debian 12 packages stormig needs to build, test and demo.
# Idempotent: only packages that are missing are installed; apt-get only.
set -eu

PKGS="
build-essential pkg-config meson ninja-build python3
clang libclang-rt-14-dev
liburing-dev libjson-c-dev libcmocka-dev libiscsi-dev libiscsi-bin
qemu-system-x86 qemu-utils tgt
busybox-static cpio kmod fio sg3-utils nvme-cli
gnuplot-nox
qemu-block-extra
libsystemd-dev systemd
debhelper devscripts dpkg-dev lintian mmdebstrap
"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing (run as root to install)" >&2
    exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
