"""Ten migrations in a row, back and forth between hosts "a" and "b",
with an EXCLUSIVE ACCESS reservation held the whole time.

The guest (1 vCPU) registers and reserves once, then runs fio verify on
its scsi-block disk round after round while the VM migrates ten times.
After every hop a third initiator sees the key registered exactly once
with the reservation, and the stormigd just left behind, probing its own
I_T nexus, is refused reads and writes (RESERVATION CONFLICT): the
running side holds the reservation.  Every fio round must verify, and the
guest's last view of the reservation must be its own key and type.
"""

import time

import guestlib
import prlib
import vhostlib

IMAGE_SIZE = 16 << 20
LUN_SIZE = 16 << 20
FIO_SIZE = 1 << 20
HOPS = 10
KEY = 0x5703100b00000001
PRTYPE = prlib.BY_SHORT["ea"]


def main():
    vhostlib.main_with_disks(__doc__, run, IMAGE_SIZE, LUN_SIZE)


def hop(cfg, src, n, pt):
    dst = vhostlib.Host(cfg, "b" if src.name == "a" else "a", incoming=True)
    rounds = vhostlib.fio_rounds(src.guest, pt)
    try:
        dst.await_incoming(src)
        started = time.monotonic()
        stats = vhostlib.migrate(src, dst, keep_source=True)
        elapsed = time.monotonic() - started
        prlib.expect_held(cfg["lun_url"], KEY, PRTYPE, f"after hop {n}")
        prlib.expect_probe(src, "write", prlib.STATUS_CONFLICT,
                           f"{src.name} after hop {n}")
        prlib.expect_probe(src, "read", prlib.STATUS_CONFLICT,
                           f"{src.name} after hop {n}")
    except BaseException:
        dst.close()
        raise
    finally:
        src.close()
    guestlib.wait_for(lambda: vhostlib.fio_rounds(dst.guest, pt) > rounds,
                      90, f"a new fio round after hop {n}", interval=0.5)
    # The outcome check runs just after the device started.
    info = guestlib.wait_for(
        lambda: next((i for i in [prlib.device_info(dst)]
                      if i.get("pr-check") != "pending"), None),
        5, f"pr-check after hop {n}")
    if info.get("pr-check") != "ok":
        raise guestlib.GuestError(f"pr-check after hop {n}: {info}")
    print(f"hop {n:2} {src.name} -> {dst.name} in {elapsed:.1f}s: handoff "
          f"{stats['handoff_downtime_ms']:.1f} ms, PR takeover "
          f"{info['pr-takeover-ms']:.1f} ms in "
          f"{info['pr-takeover-round-trips']} round trips, check "
          f"{info['pr-check']}; {dst.name} holds, {src.name}'s nexus refused")
    return dst


def run(cfg):
    host = vhostlib.Host(cfg, "a")
    try:
        print(f"boot to prompt {host.boot():.1f}s")
        hd, pt = vhostlib.guest_disks(host.guest)
        prlib.guest_register(host.guest, pt, KEY)
        prlib.guest_reserve(host.guest, pt, KEY, PRTYPE)
        prlib.expect_held(cfg["lun_url"], KEY, PRTYPE, "before migrating")
        vhostlib.fio_loop_start(host.guest, [pt], FIO_SIZE)
        for n in range(1, HOPS + 1):
            host = hop(cfg, host, n, pt)
        done = vhostlib.fio_loop_stop(host.guest, [pt], FIO_SIZE)
        print(f"fio rounds verified without error: {done[pt]}")
        prlib.guest_sees(host.guest, pt, KEY, PRTYPE)
        host.guest.shutdown()
    finally:
        host.close()


if __name__ == "__main__":
    main()
