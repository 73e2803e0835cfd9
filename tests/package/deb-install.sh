#!/bin/sh
# Builds the stormig .deb from the source tree (dpkg-buildpackage -b),
# runs lintian on it (errors fail the test, warnings are printed), installs
# it with "apt install ./stormig_*.deb" into a clean Debian root made by
# mmdebstrap, and runs the installed stormigd --version there.
#
# Usage: deb-install.sh SOURCE_DIR
#
# Everything happens in a private mount namespace (unshare --mount), on a
# tmpfs mounted there: if the test is killed, the namespace goes away with
# its mounts and nothing is left behind. The base root is cached as a
# tarball under /var/cache/stormig/, named by the hash of its recipe (the
# mmdebstrap options and the host's apt sources), so it is rebuilt only
# when the recipe changes.
set -eu

src=$(realpath "$1")
cache_dir=/var/cache/stormig
# What the package needs at run time is installed in the base, so that
# installing the .deb needs no network (apt resolves it from the base).
base_include="python3,liburing2,libjson-c5,libiscsi7,libsystemd0"

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root (mmdebstrap, chroot, mounts)"
    exit 77
fi
for tool in dpkg-buildpackage dh lintian mmdebstrap unshare chroot; do
    command -v "$tool" >/dev/null || {
        echo "FAIL: $tool missing (scripts/install-deps.sh installs it)"
        exit 1
    }
done

if [ -z "${STORMIG_PKGTEST_NS:-}" ]; then
    STORMIG_PKGTEST_NS=1 exec unshare --mount --propagation private \
        sh "$0" "$@"
fi

work=$(mktemp -d /tmp/stormig-pkgtest.XXXXXX)
trap 'cd /; umount -R "$work" 2>/dev/null || true; rmdir "$work"' EXIT
mount -t tmpfs -o size=4G,mode=0755 stormig-pkgtest "$work"
now() { date +%s; }

# 1. A copy of the tree (tracked and new files, not the build dirs): the
#    build writes debian/stormig, obj-*, and the .deb one level up.
mkdir "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z -co --exclude-standard |
        tar --null -T - -cf -) | tar -xf - -C "$work/src"
else
    (cd "$src" && tar --exclude='./build*' -cf - .) | tar -xf - -C "$work/src"
fi

t0=$(now)
(cd "$work/src" && DEB_BUILD_OPTIONS="noddebs" \
    dpkg-buildpackage -us -uc -b -j2 >"$work/build.log" 2>&1) || {
    tail -50 "$work/build.log"
    echo "FAIL: dpkg-buildpackage"
    exit 1
}
t1=$(now)
echo "dpkg-buildpackage -us -uc -b: $((t1 - t0)) s"
ls "$work"/*.deb

# 2. lintian: errors fail, the rest is shown.
lintian --tag-display-limit 0 "$work"/*.changes >"$work/lintian.log" 2>&1 || true
echo "lintian:"
sed 's/^/  /' "$work/lintian.log"
if grep -q '^E:' "$work/lintian.log"; then
    echo "FAIL: lintian errors"
    exit 1
fi

# 3. The base root, from the host's apt sources (never a fixed host).
. /etc/os-release
sources="$work/host.sources"
: >"$sources"
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && { cat "$f"; echo; } >>"$sources"
done
list="$work/host.list"
: >"$list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && grep -E '^[[:space:]]*deb[[:space:]]' "$f" >>"$list" || true
done
mirrors=""
[ -s "$sources" ] && mirrors="$mirrors $sources"
[ -s "$list" ] && mirrors="$mirrors $list"
[ -n "$mirrors" ] || { echo "FAIL: no apt sources on this host"; exit 1; }
recipe="mmdebstrap --variant=apt --include=$base_include $VERSION_CODENAME
$(cat "$sources" "$list")"
hash=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
base="$cache_dir/pkgtest-base-$VERSION_CODENAME-$hash.tar"
mkdir -p "$cache_dir"
(
    flock 9
    if [ ! -s "$base" ]; then
        echo "building the base root $base"
        # Older recipes and a half-made tarball of a killed run go.
        rm -rf "$cache_dir"/pkgtest-base-*
        # The .tar name makes mmdebstrap write a tarball.
        # shellcheck disable=SC2086
        mmdebstrap --quiet --variant=apt --include="$base_include" \
            "$VERSION_CODENAME" "$base.part.tar" $mirrors
        mv "$base.part.tar" "$base"
    fi
) 9>"$cache_dir/pkgtest-base.lock"
t2=$(now)
echo "lintian and base root: $((t2 - t1)) s"

# 4. Install into a fresh copy of it and run stormigd there.
root="$work/root"
mkdir "$root"
tar -xf "$base" -C "$root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp "$work"/stormig_*.deb "$root/tmp/"
deb=$(basename "$work"/stormig_*.deb)
chroot "$root" sh -c "cd /tmp && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends ./$deb" >"$work/install.log" 2>&1 || {
    cat "$work/install.log"
    echo "FAIL: apt install ./$deb"
    exit 1
}
want="stormigd $(cd "$work/src" && dpkg-parsechangelog -SVersion)"
got=$(chroot "$root" stormigd --version)
[ "$got" = "$want" ] || { echo "FAIL: stormigd --version: '$got', want '$want'"; exit 1; }
echo "installed: $got"
for f in /lib/systemd/system/stormigd@.service /usr/bin/stormig-qmp \
         /usr/bin/stormig-analyze /usr/bin/stormig-migrate \
         /usr/share/man/man8/stormigd.8.gz \
         /usr/share/man/man1/stormig-qmp.1.gz /etc/stormig; do
    [ -e "$root$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
chroot "$root" stormig-qmp --help >/dev/null
chroot "$root" stormigd --device scsi-hd,help >/dev/null
t3=$(now)
echo "install and run: $((t3 - t2)) s; total $((t3 - t0)) s"
echo "ok: stormig .deb builds, is lintian-clean of errors and installs"
