#!/bin/sh
# Run the qemu-system-x86_64 of the root scripts/build-vmm-root.sh built
# (QEMU 11.1 from Debian trixie-backports), as if it were installed here:
#
#   scripts/qemu-vmm-root.sh [QEMU ARGS...]
#
# STORMIG_VMM_ROOT names the root (default /var/cache/stormig/qemu-trixie);
# STORMIG_VMM_BIND lists extra host directories, colon-separated, that QEMU
# must see at the same path (the test build tree: guest image, work dir,
# sockets).  /dev, /dev/shm, /proc, /sys and /tmp are always bound, as is
# the current directory.
#
# The bind mounts live in a private mount namespace (unshare), so they
# vanish with the process however it ends, SIGKILL included; nothing is
# ever mounted in the host's namespace.  Every step execs the next, so the
# PID the caller holds is QEMU's, signals reach QEMU directly, and
# stdin/stdout/stderr pass through unchanged.
set -eu

ROOT=${STORMIG_VMM_ROOT:-/var/cache/stormig/qemu-trixie}
if [ ! -x "$ROOT/usr/bin/qemu-system-x86_64" ]; then
    echo "qemu-vmm-root: no QEMU in $ROOT (run scripts/build-vmm-root.sh)" >&2
    exit 127
fi
# Inside the namespace, as $0 of a fresh shell (the argument list is QEMU's).
# Mount points are created inside the root only; the root is ours.
# shellcheck disable=SC2016  # expanded by the inner shell
exec unshare --mount --propagation private sh -c '
set -eu
root=$0
cwd=$(pwd -P)
IFS=:
for d in /dev /dev/shm /proc /sys /tmp ${STORMIG_VMM_BIND:-} "$cwd"; do
    [ -n "$d" ] && [ -d "$d" ] || continue
    d=$(cd "$d" && pwd -P)
    # The root itself is never replaced; a directory already visible
    # through an earlier bind (one in /tmp, say) needs no mount of its own.
    [ "$d" != / ] || continue
    [ ! "$root$d" -ef "$d" ] || continue
    mkdir -p "$root$d"
    mount --rbind "$d" "$root$d"
done
unset IFS
cd "$root"
exec chroot "$root" /bin/sh -c "cd \"\$0\" && exec qemu-system-x86_64 \"\$@\"" \
    "$cwd" "$@"
' "$ROOT" "$@"
