#!/bin/sh
# Build the test guest: Debian's cloud kernel plus a busybox initramfs with
# fio, sg3-utils and nvme-cli, booting straight to a root shell on ttyS0.
#
#   scripts/build-guest.sh OUTDIR  ->  OUTDIR/vmlinuz, OUTDIR/initramfs.cpio.gz
#
# The result is cached: it is rebuilt only when an output is missing or this
# script changed since the last build.  Everything comes from Debian: the
# kernel .deb through `apt-get download`, the tools from the host install
# (scripts/install-deps.sh installs them).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUTDIR=$1
SELF=$(readlink -f "$0")

# Kernel options the guest relies on, with the module that provides each
# when it is not built in.  A required option that is neither =y nor =m is
# a build error rather than a guest that silently lacks a disk.
REQUIRED_CONFIG="
CONFIG_BLK_DEV_INITRD:-
CONFIG_RD_GZIP:-
CONFIG_DEVTMPFS:-
CONFIG_SERIAL_8250_CONSOLE:-
CONFIG_IO_URING:-
CONFIG_AIO:-
CONFIG_VIRTIO_PCI:virtio_pci
CONFIG_SCSI_VIRTIO:virtio_scsi
CONFIG_BLK_DEV_SD:sd_mod
CONFIG_CHR_DEV_SG:sg
CONFIG_BLK_DEV_NVME:nvme
CONFIG_VIRTIO_BLK:virtio_blk
"

# Busybox provides the shell and the basic tools; these come on top
# (iscsi-test-cu: libiscsi's SCSI conformance suite, run on /dev/sgN).
TOOLS="/usr/bin/fio /usr/sbin/nvme /usr/bin/iscsi-test-cu"

mkdir -p "$OUTDIR"
OUTDIR=$(readlink -f "$OUTDIR")
STAMP="$OUTDIR/.build-guest.stamp"
want_stamp=$(sha256sum "$SELF" | cut -d' ' -f1)

# Several tests may ask for the image at the same time: one builds, the
# others wait and then find it cached.
exec 9>"$OUTDIR/.build-guest.lock"
flock 9

if [ -f "$OUTDIR/vmlinuz" ] && [ -f "$OUTDIR/initramfs.cpio.gz" ] &&
   [ "$(cat "$STAMP" 2>/dev/null)" = "$want_stamp" ]; then
    echo "build-guest: cached in $OUTDIR"
    exit 0
fi
rm -f "$STAMP"

WORK=$(mktemp -d "$OUTDIR/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
KROOT="$WORK/kernel"
STAGE="$WORK/root"

log() { echo "build-guest: $*"; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

for t in $TOOLS /bin/busybox /usr/bin/sg_inq; do
    [ -x "$t" ] || die "$t missing (run scripts/install-deps.sh)"
done

# --- kernel ------------------------------------------------------------------

# The metapackage names the current ABI (linux-image-<abi>-cloud-amd64).
resolve_kernel_package() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
KPKG=$(resolve_kernel_package)
if [ -z "$KPKG" ]; then
    log "package lists lack linux-image-cloud-amd64, running apt-get update"
    apt-get update -qq
    KPKG=$(resolve_kernel_package)
fi
[ -n "$KPKG" ] || die "cannot resolve linux-image-cloud-amd64"
KVER=${KPKG#linux-image-}
log "kernel $KPKG"

(cd "$WORK" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG") ||
    die "apt-get download $KPKG failed"
dpkg-deb -x "$WORK/$KPKG"_*.deb "$KROOT"
KCONFIG="$KROOT/boot/config-$KVER"
[ -f "$KCONFIG" ] || die "kernel package has no /boot/config-$KVER"
# The package ships no modules.dep (its postinst runs depmod): make one.
depmod -b "$KROOT" "$KVER"

# --- modules -----------------------------------------------------------------

MODLIST="$WORK/modules.list"
: >"$MODLIST"
for entry in $REQUIRED_CONFIG; do
    opt=${entry%%:*}
    mod=${entry#*:}
    val=$(sed -n "s/^$opt=//p" "$KCONFIG")
    case "$val" in
    y) log "$opt built in" ;;
    m)
        [ "$mod" != - ] || die "$opt is a module but no module name is known"
        log "$opt=m: module $mod"
        # --show-depends lists dependencies first, i.e. modules.dep order.
        modprobe -d "$KROOT" -S "$KVER" --show-depends "$mod" |
            awk '$1 == "insmod" { print $2 }' >>"$MODLIST" ||
            die "modprobe cannot resolve $mod"
        ;;
    *) die "$opt is not enabled in $KPKG" ;;
    esac
done

# Debian 12 layout: /bin, /sbin, /lib and /lib64 point into /usr.
mkdir -p "$STAGE/usr/bin" "$STAGE/usr/sbin" "$STAGE/usr/lib64" \
         "$STAGE/usr/lib/x86_64-linux-gnu" "$STAGE/etc/init.d" \
         "$STAGE/proc" "$STAGE/sys" "$STAGE/dev" "$STAGE/tmp" \
         "$STAGE/run" "$STAGE/root" "$STAGE/mnt"
for d in bin sbin lib lib64; do
    ln -s "usr/$d" "$STAGE/$d"
done

KMODDIR="/lib/modules/$KVER"
: >"$STAGE/etc/guest-modules"
awk '!seen[$0]++' "$MODLIST" | while read -r ko; do
    rel=${ko#"$KROOT$KMODDIR/"}
    mkdir -p "$(dirname "$STAGE$KMODDIR/$rel")"
    cp "$ko" "$STAGE$KMODDIR/$rel"
    echo "$rel" >>"$STAGE/etc/guest-modules"
done
cp "$KROOT$KMODDIR/modules.builtin" "$KROOT$KMODDIR/modules.builtin.modinfo" \
   "$KROOT$KMODDIR/modules.order" "$STAGE$KMODDIR/"
# modules.dep inside the guest lets modprobe load the rest by hand.
depmod -b "$STAGE" "$KVER"

# --- programs and their shared libraries -------------------------------------

cp /bin/busybox "$STAGE/usr/bin/busybox"
SGTOOLS=$(dpkg -L sg3-utils | grep -E '^/usr/s?bin/.' || true)
[ -n "$SGTOOLS" ] || die "sg3-utils lists no programs"

# Copy a file to the same path in the guest, following symlinks.
copy_file() {
    mkdir -p "$(dirname "$STAGE$1")"
    [ -e "$STAGE$1" ] || cp -L "$1" "$STAGE$1"
}

for prog in $TOOLS $SGTOOLS; do
    copy_file "$prog"
    # ldd prints "name => /path (addr)" or "/path (addr)" for the loader.
    ldd "$prog" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }
                       $1 ~ /^\// { print $1 }' |
    while read -r lib; do
        copy_file "$lib"
    done
done
printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' \
    >"$STAGE/etc/ld.so.conf"
ldconfig -r "$STAGE"

# Busybox applets for everything not provided by a real program above.
"$STAGE/usr/bin/busybox" --list-full | while read -r applet; do
    path="$STAGE/usr/${applet#usr/}"
    [ -e "$path" ] || [ -L "$path" ] || ln -s /usr/bin/busybox "$path"
done
ln -s usr/bin/busybox "$STAGE/init"

# --- init --------------------------------------------------------------------

cat >"$STAGE/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/poweroff -f
::shutdown:/bin/sync
EOF

cat >"$STAGE/etc/init.d/rcS" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
# Kernel messages on the console would interleave with command output.
dmesg -n 1
kver=$(uname -r)
while read -r ko; do
    insmod "/lib/modules/$kver/$ko" || echo "rcS: cannot load $ko"
done </etc/guest-modules
hostname stormig-guest
EOF
chmod +x "$STAGE/etc/init.d/rcS"

cat >"$STAGE/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
PS1='stormig-guest# '
cd /root
EOF
echo 'root:x:0:0:root:/root:/bin/sh' >"$STAGE/etc/passwd"
echo 'root:x:0:' >"$STAGE/etc/group"

# --- pack --------------------------------------------------------------------

(cd "$STAGE" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -6 >"$WORK/initramfs.cpio.gz"
cp "$KROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
mv "$WORK/initramfs.cpio.gz" "$OUTDIR/initramfs.cpio.gz"
mv "$WORK/vmlinuz" "$OUTDIR/vmlinuz"
echo "$KVER" >"$OUTDIR/kernel-version"
echo "$want_stamp" >"$STAMP"
size=$(du -h "$OUTDIR/initramfs.cpio.gz" | cut -f1)
log "built $OUTDIR (kernel $KVER, initramfs $size)"
