"""make demo, VM part: a QEMU guest whose SCSI disks stormigd serves over
vhost-user is live-migrated to a second QEMU+stormigd pair while fio
verifies both disks; prints a short report.

Usage: demo_vm_migration.py --stormigd BIN --build-script SH --image-dir DIR
                            --work-dir DIR
"""

import sys
import time

import guestlib
import vhostlib

FIO_SIZE = 4 << 20


def main():
    return vhostlib.demo_main(__doc__, demo, "VM demo", 64 << 20, 32 << 20)


def demo(cfg):
    src = vhostlib.Host(cfg, "hostA")
    dst = vhostlib.Host(cfg, "hostB", incoming=True)
    try:
        boot = src.boot()
        devs = vhostlib.guest_disks(src.guest)
        print(f"booted in {boot:.1f}s; the guest sees "
              f"{devs[0]} (scsi-hd on an image) and {devs[1]} (scsi-block "
              "on a tgtd LUN) behind stormigd on hostA")
        vhostlib.fio_loop_start(src.guest, devs, FIO_SIZE)
        guestlib.wait_for(lambda: vhostlib.fio_rounds(src.guest, devs[0]),
                          60, "a first fio round", interval=0.5)
        dst.await_incoming(src)
        started = time.monotonic()
        stats = vhostlib.migrate(src, dst)
        elapsed = time.monotonic() - started
        before = {d: vhostlib.fio_rounds(dst.guest, d) for d in devs}
        for d in devs:
            guestlib.wait_for(lambda: vhostlib.fio_rounds(dst.guest, d) >
                              before[d], 90, "fio on hostB", interval=0.5)
        rounds = vhostlib.fio_loop_stop(dst.guest, devs, FIO_SIZE)
        print(f"migration hostA -> hostB:   {elapsed:.1f}s")
        print(f"QEMU downtime:              {stats['qemu_downtime_ms']} ms "
              f"(total {stats['qemu_total_ms']} ms)")
        print(f"device handoff downtime:    "
              f"{stats['handoff_downtime_ms']:.1f} ms (stormigd: VMM "
              "stopped the rings -> destination took state and disks)")
        print(f"device state size:          {stats['state_bytes']} bytes")
        print("disk owner after:           hostB")
        print("fio verify (crc32c):        " +
              ", ".join(f"{d} {n} rounds" for d, n in rounds.items()) +
              ", 0 errors")
        dst.guest.shutdown()
        return 0
    except guestlib.GuestError as e:
        print(f"VM demo failed: {e}", file=sys.stderr)
        return 1
    finally:
        src.close()
        dst.close()


if __name__ == "__main__":
    sys.exit(main())
