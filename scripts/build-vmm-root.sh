#!/bin/sh
# Build the Debian 13 (trixie) root filesystem that holds the second VMM the
# guest tests run: QEMU 11.1 from trixie-backports.
#
#   scripts/build-vmm-root.sh [ROOTDIR]   (default /var/cache/stormig/qemu-trixie)
#
# scripts/qemu-vmm-root.sh runs that root's qemu-system-x86_64.  The root
# is built with mmdebstrap from the Debian mirror the host's apt already
# uses, outside the source tree, and rebuilt only when this recipe or the
# mirror changes (a stamp holds their hash).  It is built into a temporary
# directory next to ROOTDIR and renamed into place, so a reader never sees
# half a root; concurrent callers are serialised with flock.
set -eu

ROOT=${1:-/var/cache/stormig/qemu-trixie}
SUITE=trixie
# Without the Default-Release pin apt would take trixie's QEMU 10.0;
# naming each package as pkg/trixie-backports fails on seabios' deps.
PIN='APT::Default-Release "trixie-backports"'
PACKAGES=qemu-system-x86,qemu-block-extra,qemu-utils,seabios,ipxe-qemu

log() { echo "build-vmm-root: $*" >&2; }
die() { echo "build-vmm-root: error: $*" >&2; exit 1; }

# The URI serving the host's Debian main archive (its own release's suite,
# not -security or -updates), from deb822 .sources files or the legacy
# sources.list.
host_mirror() {
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || return 0
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # Stanzas are separated by blank lines; field names are
        # case-insensitive; the first URI of a matching stanza wins.
        awk -v suite="$codename" '
            function flush() {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^no$/ &&
                    (" " suites " ") ~ (" " suite " ") && uri != "")
                    { print uri; found = 1; exit }
                types = suites = uri = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                gsub(/[ \t]+/, " ", val)
                if (key == "types") types = val
                else if (key == "suites") suites = val
                else if (key == "uris") { split(val, u, " "); uri = u[1] }
                else if (key == "enabled") enabled = tolower(val)
            }
            END { if (!found) flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
            awk -v suite="$codename" \
                '$1 == "deb" && $3 == suite { print $2; exit }'
    done
}

MIRROR=$(host_mirror | head -n 1)
[ -n "$MIRROR" ] || die "no Debian main archive URI in the host's apt sources"
MIRROR=${MIRROR%/}

command -v mmdebstrap >/dev/null ||
    die "mmdebstrap missing (run scripts/install-deps.sh)"

SELF=$(readlink -f "$0")
want_stamp=$(printf '%s\n%s\n' "$(sha256sum <"$SELF")" "$MIRROR" |
             sha256sum | cut -d' ' -f1)
STAMP="$ROOT/.stormig-vmm-root.stamp"

PARENT=$(dirname "$ROOT")
mkdir -p "$PARENT"
exec 9>"$ROOT.lock"
flock 9

if [ "$(cat "$STAMP" 2>/dev/null)" = "$want_stamp" ] &&
   [ -x "$ROOT/usr/bin/qemu-system-x86_64" ]; then
    log "cached in $ROOT"
    exit 0
fi

TMP=$(mktemp -d "$ROOT.new.XXXXXX")
OLD="$ROOT.old.$$"
trap 'rm -rf "$TMP" "$OLD"' EXIT
log "building $ROOT from $MIRROR ($SUITE with $SUITE-backports)"
started=$(date +%s)
# mmdebstrap wants an empty directory or a path that does not exist.
rmdir "$TMP"
mmdebstrap --quiet --variant=apt --aptopt="$PIN" --include="$PACKAGES" \
    "$SUITE" "$TMP" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-backports main" ||
    die "mmdebstrap failed"
[ -x "$TMP/usr/bin/qemu-system-x86_64" ] ||
    die "the root has no qemu-system-x86_64"
version=$(chroot "$TMP" qemu-system-x86_64 --version | head -n 1)
echo "$want_stamp" >"$TMP/.stormig-vmm-root.stamp"

# rename() cannot replace a non-empty directory: move the old root aside
# first (a wrapper starting right now fails instead of running a mix).
if [ -e "$ROOT" ]; then
    mv "$ROOT" "$OLD"
fi
mv "$TMP" "$ROOT"
log "built $ROOT in $(( $(date +%s) - started ))s: $version," \
    "$(du -sh "$ROOT" | cut -f1)"
