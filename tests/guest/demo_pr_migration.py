"""make demo, reservation part: a QEMU guest takes a SCSI persistent
reservation on its scsi-block disk (sg_persist), the VM live-migrates to
a second QEMU+stormigd pair, and the reservation moves with it.  Prints
the holder before and after (as a third initiator and the source's own
nexus see it), the fio verify result on the destination, the device
handoff and the reservation takeover times.

Usage: demo_pr_migration.py --stormigd BIN --build-script SH
                            --image-dir DIR --work-dir DIR
(STORMIG_PRTEST names stormig-prtest.)
"""

import sys

import guestlib
import prlib
import vhostlib
from guestcheck import fio_verify

KEY = 0x5703de0000000001
PRTYPE = prlib.BY_SHORT["we"]
FIO_SIZE = 4 << 20


def main():
    return vhostlib.demo_main(__doc__, demo, "reservation demo", 16 << 20,
                              16 << 20)


def holder_line(seen):
    return (f"key {seen['key']:#x}, {PRTYPE.name}, registered keys "
            + " ".join(f"{k:#x}" for k in seen["keys"]))


def demo(cfg):
    src = vhostlib.Host(cfg, "hostA")
    dst = vhostlib.Host(cfg, "hostB", incoming=True)
    try:
        src.boot()
        hd, pt = vhostlib.guest_disks(src.guest)
        prlib.guest_register(src.guest, pt, KEY)
        prlib.guest_reserve(src.guest, pt, KEY, PRTYPE)
        seen = prlib.expect_held(cfg["lun_url"], KEY, PRTYPE, "before")
        print(f"guest on hostA: sg_persist register + reserve on {pt}")
        print(f"holder before:              hostA ({src.initiator}); "
              f"third initiator sees {holder_line(seen)}")
        dst.await_incoming(src)
        stats = vhostlib.migrate(src, dst, keep_source=True)
        seen = prlib.expect_held(cfg["lun_url"], KEY, PRTYPE, "after")
        prlib.expect_source_lost(src, PRTYPE, cfg["lun_url"])
        src.close()
        status = prlib.guest_write_status(dst.guest, pt)
        if status != "Good":
            raise guestlib.GuestError(f"guest WRITE on hostB: {status}")
        job = fio_verify(dst.guest, pt, FIO_SIZE)
        took = prlib.device_info(dst)["pr-takeover-ms"]
        print(f"holder after:               hostB ({dst.initiator}); "
              f"third initiator sees {holder_line(seen)}; hostA's nexus "
              "gets RESERVATION CONFLICT")
        print(f"fio verify on hostB:        {FIO_SIZE >> 20} MiB written "
              f"and verified, {job['error']} errors, no RESERVATION "
              "CONFLICT")
        print(f"device handoff downtime:    "
              f"{stats['handoff_downtime_ms']:.1f} ms (QEMU downtime "
              f"{stats['qemu_downtime_ms']} ms)")
        print(f"reservation takeover:       {took:.1f} ms (verify, "
              "REGISTER, PREEMPT, check; inside the handoff)")
        dst.guest.shutdown()
        return 0
    finally:
        src.close()
        dst.close()


if __name__ == "__main__":
    sys.exit(main())
