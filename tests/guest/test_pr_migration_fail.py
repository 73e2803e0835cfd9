"""A VM migration that fails after the destination took the reservation.

QEMU migrates with pause-before-switchover: it stops the VM (and the
vhost-user rings, which releases the stormigd handoff: state, disks and
the reservation PREEMPT go to the destination) and then waits before its
own switchover.  The destination is killed there, QEMU continues and its
migration fails, so the source QEMU runs the VM again and restarts the
rings on the source stormigd.  Two rounds in one VM lifetime (1 vCPU),
the guest holding a WRITE EXCLUSIVE reservation:

1. Only the destination QEMU dies; its stormigd lives and holds the disks.
   The source stormigd must refuse to take them back (query-migrate
   late-recovery "refused", its devices stay stopped, the destination's
   nexus keeps the reservation).  Once the destination stormigd is gone
   too, 'cont' takes disks and reservation back.
2. Destination stormigd and QEMU both die.  The source stormigd takes the
   disks back and PREEMPTs the reservation back by itself before serving
   the guest (late-recovery "resumed").

After each: a third initiator sees the key registered once with the
reservation; the source's own nexus may write (probed while its stormigd
is briefly stopped); a new session with the dead destination's name gets
RESERVATION CONFLICT; fio verify passes in the guest.
"""

import time

import guestlib
import prlib
import vhostlib
from guestcheck import fio_verify

IMAGE_SIZE = 16 << 20
LUN_SIZE = 16 << 20
FIO_SIZE = 2 << 20
KEY = 0x5703fa11ed000001
PRTYPE = prlib.BY_SHORT["we"]


def main():
    vhostlib.main_with_disks(__doc__, run, IMAGE_SIZE, LUN_SIZE)


def qemu_migration_status(guest):
    return guest.qmp.command("query-migrate").get("status")


def handoff_then_pause(src, dst):
    """Both migrations up to QEMU's pre-switchover pause; by then the
    stormigd handoff (and the destination's PREEMPT) completed."""
    vhostlib.start_device_handoff(src, dst)
    qmp = src.guest.qmp
    qmp.command("migrate-set-capabilities", {"capabilities": [
        {"capability": "pause-before-switchover", "state": True}]})
    qmp.command("migrate-set-parameters", {"max-bandwidth": 1 << 30,
                                           "downtime-limit": 300})
    qmp.command("migrate", {"uri": dst.guest.incoming})
    guestlib.wait_for(lambda: qemu_migration_status(src.guest) ==
                      "pre-switchover", 120, "QEMU to pause before its "
                      "switchover", interval=0.1)
    vhostlib.wait_migration(src.daemon, 30)
    vhostlib.wait_migration(dst.daemon, 30)
    if src.daemon.owns_disks() or not dst.daemon.owns_disks():
        raise guestlib.GuestError("the disks did not go to the destination")
    info = prlib.device_info(dst)
    print(f"handoff done while QEMU pauses: {dst.name} took the "
          f"reservation (PREEMPT {info['pr-takeover-ms']:.1f} ms)")


def continue_into_failure(src):
    """QEMU goes on towards a dead destination: its migration fails and
    the VM runs on the source again."""
    src.guest.qmp.command("migrate-continue", {"state": "pre-switchover"})
    guestlib.wait_for(lambda: qemu_migration_status(src.guest) == "failed",
                      60, "QEMU's migration to fail", interval=0.1)
    guestlib.wait_for(lambda: src.guest.status() == "running", 30,
                      "the source QEMU to run the VM again")


def late_recovery(src, want):
    return guestlib.wait_for(
        lambda: (lambda i: i if i.get("late-recovery") == want else None)(
            src.daemon.cmd("query-migrate")), 30,
        f"late-recovery {want} on {src.name}", interval=0.1)


def check_source_holds(cfg, src, dead):
    """The source's nexus holds the reservation again and the guest's
    I/O passes."""
    url = cfg["lun_url"]
    prlib.expect_held(url, KEY, PRTYPE, "after the rollback")
    # Stop the devices for a moment to probe the session the guest uses.
    src.daemon.cmd("stop")
    prlib.expect_probe(src, "write", prlib.STATUS_GOOD, "source after "
                       "rollback")
    src.daemon.cmd("cont")
    got = prlib.fresh_rw(url, dead.initiator, "write")
    if got != prlib.STATUS_CONFLICT:
        raise guestlib.GuestError(f"{dead.initiator} wrote with {got}")
    fio_verify(src.guest, cfg["pt"], FIO_SIZE)
    prlib.guest_sees(src.guest, cfg["pt"], KEY, PRTYPE)


def round_destination_alive(cfg, src):
    dst = vhostlib.Host(cfg, "b", incoming=True)
    try:
        dst.await_incoming(src)
        handoff_then_pause(src, dst)
        prlib.expect_held(cfg["lun_url"], KEY, PRTYPE, "after the handoff")
        prlib.expect_probe(src, "write", prlib.STATUS_CONFLICT,
                           "source after the handoff")
        dst.guest.close()           # the destination QEMU dies
        dst.guest = None
        continue_into_failure(src)
        info = late_recovery(src, "refused")
        if src.daemon.status() != "postmigrate" or src.daemon.owns_disks():
            raise guestlib.GuestError("the source took the disks from a "
                                      "live destination")
        prlib.expect_probe(src, "write", prlib.STATUS_CONFLICT,
                           "source while the destination lives")
        print(f"destination stormigd alive: refused, source stays "
              f"stopped ({info['late-recovery-error']})")
        dst.close()                 # now its stormigd is gone as well
        started = time.monotonic()
        src.daemon.cmd("cont")
        print(f"after the destination exited, 'cont' took disks and "
              f"reservation back in {time.monotonic() - started:.2f}s")
        check_source_holds(cfg, src, dst)
    finally:
        dst.close()


def round_destination_dead(cfg, src):
    dst = vhostlib.Host(cfg, "c", incoming=True)
    try:
        dst.await_incoming(src)
        handoff_then_pause(src, dst)
        prlib.expect_probe(src, "write", prlib.STATUS_CONFLICT,
                           "source after the handoff")
        dst.close()                 # destination stormigd and QEMU die
        continue_into_failure(src)
        info = late_recovery(src, "resumed")
        if (info["status"] != "failed" or src.daemon.status() != "running"
                or not src.daemon.owns_disks()):
            raise guestlib.GuestError(f"source after the late failure: "
                                      f"{info}")
        took = prlib.device_info(src)["pr-takeover-ms"]
        print(f"destination dead: the source took disks and reservation "
              f"back by itself in {info['late-recovery-time']:.1f} ms "
              f"(PREEMPT back {took:.1f} ms)")
        check_source_holds(cfg, src, dst)
    finally:
        dst.close()


def run(cfg):
    src = vhostlib.Host(cfg, "a")
    try:
        print(f"boot to prompt {src.boot():.1f}s")
        hd, cfg["pt"] = vhostlib.guest_disks(src.guest)
        prlib.guest_register(src.guest, cfg["pt"], KEY)
        prlib.guest_reserve(src.guest, cfg["pt"], KEY, PRTYPE)
        prlib.expect_held(cfg["lun_url"], KEY, PRTYPE, "before migration")
        round_destination_alive(cfg, src)
        round_destination_dead(cfg, src)
        src.guest.shutdown()
    finally:
        src.close()


if __name__ == "__main__":
    main()
