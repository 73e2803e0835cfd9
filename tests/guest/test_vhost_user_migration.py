"""Live migration of a VM whose SCSI controller stormigd serves over
vhost-user, three times back and forth, while fio verifies both disks.

Each hop starts a new stormigd (--incoming) and a new QEMU (-incoming) on
the same image file and tgtd LUN, migrates the VM with vhostlib.migrate()
(stormigd hands its device state and the disks over once QEMU stopped the
device), and checks that the guest's I/O continues on the destination.
At the end every fio round must have verified without error, and what
the guest reads from each disk must equal the file behind it.
"""

import os
import shutil
import sys
import time

import guestlib
import vhostlib

IMAGE_SIZE = 64 << 20
LUN_SIZE = 32 << 20
FIO_SIZE = 4 << 20
HOPS = 3
CHECK_SIZE = 16 << 20


def main():
    vhostlib.main_with_disks(__doc__, run, IMAGE_SIZE, LUN_SIZE)


def wait_progress(guest, devs, before, timeout=90):
    """Wait until every device finished one more fio round."""
    for dev in devs:
        guestlib.wait_for(lambda: vhostlib.fio_rounds(guest, dev) >
                          before[dev], timeout, f"a new fio round on {dev}",
                          interval=0.5)


def run(cfg):
    host = vhostlib.Host(cfg, "h0")
    hosts = [host]
    try:
        print(f"boot to prompt {host.boot():.1f}s")
        devs = vhostlib.guest_disks(host.guest)
        vhostlib.fio_loop_start(host.guest, devs, FIO_SIZE)
        rounds = {d: 0 for d in devs}
        for hop in range(1, HOPS + 1):
            rounds = {d: vhostlib.fio_rounds(host.guest, d) for d in devs}
            dst = vhostlib.Host(cfg, f"h{hop}", incoming=True)
            hosts.append(dst)
            dst.await_incoming(host)
            started = time.monotonic()
            stats = vhostlib.migrate(host, dst)
            print(f"hop {hop} {host.name} -> {dst.name} in "
                  f"{time.monotonic() - started:.1f}s: "
                  f"{vhostlib.format_stats(stats)}")
            host = dst
            # I/O goes on behind the new stormigd.
            wait_progress(host.guest, devs, rounds)
        done = vhostlib.fio_loop_stop(host.guest, devs, FIO_SIZE)
        print("fio rounds verified without error: " +
              ", ".join(f"{d} {n}" for d, n in done.items()))
        compare_disks(host.guest, devs, cfg)
        host.guest.shutdown()
    finally:
        for h in hosts:
            h.close()


def compare_disks(guest, devs, cfg):
    guest.check("sync")
    files = [cfg["image_file"], os.path.join(cfg["workdir"], "lun.img")]
    for dev, path in zip(devs, files):
        seen = vhostlib.guest_md5(guest, dev, CHECK_SIZE)
        want = vhostlib.file_md5(path, CHECK_SIZE)
        if seen != want:
            raise guestlib.GuestError(f"{dev}: the guest reads {seen}, "
                                      f"{os.path.basename(path)} holds {want}")
    print(f"first {CHECK_SIZE >> 20} MiB of each disk match their files")


if __name__ == "__main__":
    main()
