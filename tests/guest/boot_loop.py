"""Boot the vhost-user-scsi guest again and again; count and explain hangs.

Each boot starts a stormigd (scsi-hd, and with a tgtd LUN a scsi-block)
and a QEMU guest on it, waits for the shell prompt, checks that the guest
sees its disks and powers it off.  The configurations (vCPUs, with or
without the scsi-block LUN) take turns.  A boot that does not reach the
prompt in time is a hang: before anything is killed, where it stopped is
written to BOOT.diag in the work directory:

* whether QEMU's monitor still answers (it does not while a vCPU holds
  the big lock waiting for a vhost-user reply), the vCPUs' RIP (QEMU
  7.2's x-query-virtio-* commands are not used: they crash it on a
  vhost-user-scsi device);
* stormigd's view of each ring (query-devices: the driver's avail index
  and used_event as guest memory holds them, the device's indices,
  chains in flight, kicks and interrupts counted) and its log tail;
* the console tail.

    python3 boot_loop.py --image-dir DIR --work-dir DIR [--stormigd BIN]
        [--build-script scripts/build-guest.sh] [--boots 20] [--smp 1,2]
        [--lun on,off] [--timeout 120] [--kernel-messages]

--stormigd defaults to $STORMIGD; with --build-script the image is built
into --image-dir first when missing or stale (as meson runs it, suite
guest, 10 boots).

--kernel-messages boots without `quiet` and keeps kernel messages on the
console after the guest's init (which otherwise lowers the console log
level), through a small initramfs overlay.  STORMIGD_LOG_LEVEL=debug in
the environment logs every vhost-user message.  Exit status: 0 when every
boot reached the prompt.

Python 3 standard library only.
"""

import argparse
import gzip
import itertools
import json
import os
import re
import shutil
import sys
import time

import guestlib
import tgtlib
import vhostlib

IMAGE_SIZE = 16 << 20
LUN_SIZE = 16 << 20


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stormigd", default=os.environ.get("STORMIGD"))
    p.add_argument("--build-script")
    p.add_argument("--image-dir", required=True,
                   help="directory with vmlinuz and initramfs.cpio.gz")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--boots", type=int, default=20)
    p.add_argument("--smp", default="1,2")
    p.add_argument("--lun", default="on,off")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--kernel-messages", action="store_true")
    guestlib.add_qemu_args(p)
    return p.parse_args()


# --- an initramfs overlay that keeps kernel messages on the console --------

def cpio_entries(data):
    """(name, mode, body) of each member of a newc cpio archive."""
    off = 0
    while off + 110 <= len(data):
        hdr = data[off:off + 110]
        if hdr[:6] != b"070701":
            raise guestlib.GuestError("initramfs is not a newc cpio")
        fields = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_end = off + 110 + namesize
        name = data[off + 110:name_end - 1].decode()
        body_off = (name_end + 3) & ~3
        body = data[body_off:body_off + size]
        off = (body_off + size + 3) & ~3
        if name == "TRAILER!!!":
            return
        yield name, mode, body


def cpio_member(name, mode, body):
    fields = [0, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name) + 1, 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4) + body
    return out + b"\0" * (-len(out) % 4)


def verbose_initrd(image, workdir):
    """The image's initramfs followed by an overlay whose rcS leaves the
    console log level alone (the kernel unpacks both, the later wins)."""
    with gzip.open(image["initrd"]) as f:
        data = f.read()
    rcs = next((b for n, _, b in cpio_entries(data)
                if n == "etc/init.d/rcS"), None)
    if rcs is None:
        raise guestlib.GuestError("initramfs has no etc/init.d/rcS")
    rcs = re.sub(rb"\ndmesg -n [0-9]+\n", b"\ndmesg -n 8\n", rcs)
    overlay = cpio_member("etc/init.d/rcS", 0o100755, rcs)
    overlay += cpio_member("TRAILER!!!", 0, b"")
    path = os.path.join(workdir, "initramfs-kmsg.cpio.gz")
    with open(image["initrd"], "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.write(gzip.compress(overlay))
    return dict(image, initrd=path)


# --- where a hung boot stopped ---------------------------------------------

def hmp(guest, cmd):
    return guest.qmp.command("human-monitor-command",
                             {"command-line": cmd}, timeout=10)


def section(out, title, fn):
    out.write(f"=== {title}\n")
    try:
        value = fn()
        out.write(value if isinstance(value, str)
                  else json.dumps(value, indent=1))
    except Exception as e:          # a diagnosis must not stop the loop
        out.write(f"(unavailable: {type(e).__name__}: {e})")
    out.write("\n")


def diagnose(host, path):
    guest = host.guest
    with open(path, "w") as out:
        section(out, "QEMU status", lambda: guest.qmp.command(
            "query-status", timeout=10))
        section(out, "vCPU registers",
                lambda: "\n".join(line for line in
                                  hmp(guest, "info registers -a")
                                  .splitlines()
                                  if re.match(r"(CPU|RAX|RIP|EFL)", line)))
        section(out, "stormigd devices",
                lambda: host.daemon.cmd("query-devices"))
        section(out, "stormigd log", lambda: host.daemon.log_tail(6000))
        section(out, "console", lambda: guest.console.buf[-3000:].decode(
            errors="replace"))


# --- the loop ----------------------------------------------------------------

def boot_once(cfg, n, args):
    host = vhostlib.Host(cfg, f"b{n}")
    try:
        seconds = host.boot(args.timeout)
        vhostlib.guest_disks(host.guest)
        host.guest.shutdown()
        return seconds, None
    except guestlib.GuestTimeout as e:
        diag = os.path.join(cfg["workdir"], f"b{n}.diag")
        if host.guest and host.guest.qmp:
            diagnose(host, diag)
        return None, f"{e}".splitlines()[0] + f" (see {diag})"
    finally:
        host.close()


def main():
    args = parse_args()
    guestlib.select_qemu(args)
    if not args.stormigd:
        sys.exit("boot_loop.py: no --stormigd and no STORMIGD")
    os.environ["STORMIGD"] = args.stormigd
    if args.build_script:
        image = guestlib.build_image(args.build_script, args.image_dir)
    else:
        image = {"kernel": os.path.join(args.image_dir, "vmlinuz"),
                 "initrd": os.path.join(args.image_dir, "initramfs.cpio.gz")}
    workdir = os.path.join(os.path.abspath(args.work_dir), "boot_loop")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    if args.kernel_messages:
        os.environ["STORMIG_GUEST_KERNEL_DEBUG"] = "1"
        image = verbose_initrd(image, workdir)
    img = guestlib.make_disk(os.path.join(workdir, "hd.img"), IMAGE_SIZE)
    configs = list(itertools.product(
        [int(s) for s in args.smp.split(",")],
        [v == "on" for v in args.lun.split(",")]))
    hangs = 0
    with tgtlib.Tgtd(workdir) as tgtd:
        url = tgtd.add_lun(os.path.join(workdir, "lun.img"), size=LUN_SIZE)
        for n in range(args.boots):
            smp, lun = configs[n % len(configs)]
            cfg = {"workdir": workdir, "image": image, "image_file": img,
                   "stormigd": args.stormigd, "smp": smp,
                   "lun_url": url if lun else None}
            started = time.monotonic()
            seconds, hang = boot_once(cfg, n, args)
            what = f"boot {n}: smp={smp} lun={'on' if lun else 'off'}:"
            if hang:
                hangs += 1
                print(f"{what} HANG {hang}", flush=True)
            else:
                print(f"{what} prompt after {seconds:.1f}s (total "
                      f"{time.monotonic() - started:.1f}s)", flush=True)
    print(f"{hangs} hang(s) in {args.boots} boots")
    sys.exit(1 if hangs else 0)


if __name__ == "__main__":
    main()
