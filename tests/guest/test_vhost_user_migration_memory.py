"""Guest memory is the same on both sides of a live migration while
stormigd serves the guest's disks over vhost-user.

stormigd writes guest memory behind QEMU's back (data-in, response
headers, used rings); QEMU learns about those writes only from the dirty
log (vhost-user.rst "Migration"), and GET_VRING_BASE must reply only once
no further write will come.  A write that misses the log, or one that
lands after the source's rings were stopped, leaves a page that differs
between the source and the destination, which the guest then reads stale.

Each hop starts the destination QEMU paused (-S); once QEMU reports the
migration completed and both stormigd finished the device handoff, the
source QEMU (stopped) and the destination (not yet running) must hold
identical guest memory: both are memfds, read here page by page.  fio
verify runs on the scsi-hd and the scsi-block disk all along.

One vCPU: QEMU 7.2's TCG loses pages written by the vCPUs themselves
during migration, with QEMU's own virtio-scsi as well (no stormig
involved), often with two vCPUs and rarely with one; the guest kernel then
crashes.  Such pages hold kernel data (per-CPU areas, struct pages) and
differ by a few bytes; a write of ours that missed the log shows up on
every hop under I/O, in response headers, used rings or data buffers.
"""

import mmap
import os
import time

import guestlib
import tgtlib
import vhostlib

IMAGE_SIZE = 64 << 20
LUN_SIZE = 32 << 20
FIO_SIZE = 4 << 20
HOPS = 3
PAGE = 4096
CHUNK = 1 << 20
SHOW_PAGES = 10


def main():
    args, image, workdir = guestlib.setup_test(__doc__)
    stormigd = vhostlib.find_stormigd(args)
    img = guestlib.make_disk(os.path.join(workdir, "hd.img"), IMAGE_SIZE)
    lun_file = os.path.join(workdir, "lun.img")

    def body():
        with tgtlib.Tgtd(workdir) as tgtd:
            cfg = {"workdir": workdir, "image": image, "stormigd": stormigd,
                   "image_file": img,
                   "lun_url": tgtd.add_lun(lun_file, size=LUN_SIZE)}
            run(cfg)

    guestlib.run_test(body)
    os.unlink(img)
    os.unlink(lun_file)


def run(cfg):
    host = vhostlib.Host(cfg, "h0")
    hosts = [host]
    try:
        print(f"boot to prompt {host.boot():.1f}s")
        devs = vhostlib.guest_disks(host.guest)
        vhostlib.fio_loop_start(host.guest, devs, FIO_SIZE)
        for hop in range(1, HOPS + 1):
            rounds = {d: vhostlib.fio_rounds(host.guest, d) for d in devs}
            dst = vhostlib.Host(cfg, f"h{hop}", incoming=True)
            hosts.append(dst)
            started = time.monotonic()
            pages = migrate_paused(host, dst)
            print(f"hop {hop} {host.name} -> {dst.name} in "
                  f"{time.monotonic() - started:.1f}s: {pages} pages "
                  "compared, all equal")
            host = dst
            for d in devs:
                guestlib.wait_for(
                    lambda: vhostlib.fio_rounds(host.guest, d) > rounds[d],
                    90, f"a new fio round on {d}", interval=0.5)
        done = vhostlib.fio_loop_stop(host.guest, devs, FIO_SIZE)
        print("fio rounds verified without error: " +
              ", ".join(f"{d} {n}" for d, n in done.items()))
        host.guest.shutdown()
    finally:
        for h in hosts:
            h.close()


def migrate_paused(src, dst):
    """Migrate src to a paused dst, compare memory, then run dst.

    Returns the number of pages compared; raises on any difference."""
    dst.start_daemon()
    dst.guest = guestlib.start_destination(src.guest, name=dst.name + "-qemu",
                                           extra_args=dst.qemu_args() +
                                           ["-S"])
    vhostlib.start_device_handoff(src, dst)
    qemu_migrate(src.guest, dst.guest)
    vhostlib.wait_migration(src.daemon, 30)
    vhostlib.wait_migration(dst.daemon, 30)
    if src.daemon.owns_disks() or not dst.daemon.owns_disks():
        raise guestlib.GuestError("disk ownership did not move with the VM")
    pages, diff = compare_memory(src.guest.proc.pid, dst.guest.proc.pid)
    if diff:
        shown = ", ".join(f"{off:#x} ({n} bytes)"
                          for off, n in diff[:SHOW_PAGES])
        raise guestlib.GuestError(
            f"{len(diff)} of {pages} guest pages differ between the stopped "
            f"source and the destination; at memory offsets {shown}")
    dst.guest.qmp.command("cont")
    guestlib.wait_for(lambda: dst.guest.status() == "running", 30,
                      "the destination to run", alive=dst.guest.check_alive)
    src.guest.quit()
    src.guest = None
    src.close()
    return pages


def qemu_migrate(src, dst, timeout=120):
    """QEMU's migration only: guestlib.migrate would wait for dst to run."""
    src.qmp.command("migrate-set-parameters",
                    {"max-bandwidth": 1 << 30, "downtime-limit": 300})
    src.qmp.command("migrate", {"uri": dst.incoming})
    deadline = time.monotonic() + timeout
    while True:
        info = src.qmp.command("query-migrate")
        if info.get("status") == "completed":
            break
        if info.get("status") in ("failed", "cancelled"):
            raise guestlib.GuestError(f"migration {info['status']}: "
                                      f"{info.get('error-desc')}")
        if time.monotonic() >= deadline:
            raise guestlib.GuestTimeout(f"migration still {info['status']}")
        src.check_alive()
        dst.check_alive()
        time.sleep(0.05)
    status = dst.status()
    if status == "running":
        raise guestlib.GuestError("the destination runs although started "
                                  "with -S")


def guest_memfd(pid):
    """Path of the memfd backing the guest RAM of QEMU pid."""
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        # guestlib names the backend "mem": memory-backend-memfd,id=mem
        if target.startswith("/memfd:mem"):
            return os.path.join(fd_dir, fd)
    raise guestlib.GuestError(f"QEMU {pid} has no guest memory memfd")


def compare_memory(src_pid, dst_pid):
    """(pages compared, [(offset, bytes differing) per differing page])."""
    with open(guest_memfd(src_pid), "rb") as fa, \
            open(guest_memfd(dst_pid), "rb") as fb:
        size = os.fstat(fa.fileno()).st_size
        if os.fstat(fb.fileno()).st_size != size:
            raise guestlib.GuestError("source and destination guest memory "
                                      "differ in size")
        a = mmap.mmap(fa.fileno(), size, prot=mmap.PROT_READ)
        b = mmap.mmap(fb.fileno(), size, prot=mmap.PROT_READ)
        try:
            diff = []
            for off in range(0, size, CHUNK):
                if a[off:off + CHUNK] != b[off:off + CHUNK]:
                    diff += differing_pages(a, b, off, min(size, off + CHUNK))
            return size // PAGE, diff
        finally:
            a.close()
            b.close()


def differing_pages(a, b, start, end):
    out = []
    for off in range(start, end, PAGE):
        pa, pb = a[off:off + PAGE], b[off:off + PAGE]
        if pa != pb:
            out.append((off, sum(x != y for x, y in zip(pa, pb))))
    return out


if __name__ == "__main__":
    main()
