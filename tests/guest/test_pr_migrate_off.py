"""migrate-pr=off: what docs/migrate-pr.md promises for it.

A guest (1 vCPU) on a scsi-block disk with migrate-pr=off over a tgtd
LUN:

* REPORT CAPABILITIES reaches the guest as stormigd receives it (every
  field as a third initiator reads it; SIP_C and ATC_C set, as the
  x-lun-caps test property makes the LUN report them);
* the guest registers and takes a WRITE EXCLUSIVE reservation; nothing is
  snooped: query-devices shows no reservation state and no journal file
  is written;
* after the migration the reservation stays with the source's I_T nexus:
  the third initiator sees the key once and the reservation, the source
  stormigd (still up, session logged in) probes its own nexus and may
  still write; on the destination the guest's WRITE gets RESERVATION
  CONFLICT and a dd write fails, while reads pass (WRITE EXCLUSIVE lets
  anyone read, SPC-4 5.13.1).
"""

import os

import guestlib
import prlib
import vhostlib

IMAGE_SIZE = 16 << 20
LUN_SIZE = 16 << 20
KEY = 0x57030ff000000001
PRTYPE = prlib.BY_SHORT["we"]


def main():
    vhostlib.main_with_disks(__doc__, run, IMAGE_SIZE, LUN_SIZE,
                             migrate_pr="off", x_lun_caps=True)


def expect_untracked(host):
    info = prlib.device_info(host)
    tracked = sorted(k for k in info if k.startswith("pr-") or
                     k == "migrate-pr")
    if tracked:
        raise guestlib.GuestError(f"{host.name} tracks reservations with "
                                  f"migrate-pr=off: {info}")
    if os.path.exists(host.pr_journal) and os.listdir(host.pr_journal):
        raise guestlib.GuestError(f"{host.name} wrote a reservation journal: "
                                  f"{os.listdir(host.pr_journal)}")


def check_caps(guest, dev, url):
    """scsi-block runs with x-lun-caps=on: stormigd receives the LUN's
    REPORT CAPABILITIES with SIP_C and ATC_C set (tgt reports neither);
    with migrate-pr=off the guest must see them set, nothing patched."""
    data = prlib.guest_caps(guest, dev)
    seen = prlib.caps_fields(data)
    lun = dict(prlib.lun_caps(url), sip_c=1, atc_c=1)
    if seen != {k: lun[k] for k in seen} or data[:2] != b"\x00\x08":
        raise guestlib.GuestError(f"REPORT CAPABILITIES: the guest sees "
                                  f"{data.hex()} = {seen}, the LUN sends "
                                  f"{lun}")
    print(f"REPORT CAPABILITIES unchanged: {data.hex()} ({lun})")


def run(cfg):
    url = cfg["lun_url"]
    src = vhostlib.Host(cfg, "a")
    dst = vhostlib.Host(cfg, "b", incoming=True)
    try:
        print(f"boot to prompt {src.boot():.1f}s")
        hd, pt = vhostlib.guest_disks(src.guest)
        check_caps(src.guest, pt, url)
        prlib.guest_register(src.guest, pt, KEY)
        prlib.guest_reserve(src.guest, pt, KEY, PRTYPE)
        prlib.expect_held(url, KEY, PRTYPE, "before migration")
        expect_untracked(src)
        dst.await_incoming(src)
        vhostlib.migrate(src, dst, keep_source=True)
        prlib.expect_held(url, KEY, PRTYPE, "after migration")
        prlib.expect_probe(src, "write", prlib.STATUS_GOOD,
                           "the source's nexus after migration")
        src.close()
        print("after migration the reservation stays with a's nexus (a "
              "still may write)")
        guest = dst.guest
        status = prlib.guest_write_status(guest, pt)
        if status != "Reservation Conflict":
            raise guestlib.GuestError(f"guest WRITE on b got {status}")
        out, rc = guest.run(f"dd if=/dev/zero of={pt} bs=4k count=1 "
                            "oflag=direct 2>&1")
        if rc == 0:
            raise guestlib.GuestError(f"a dd write on b passed:\n{out}")
        guest.check(f"dd if={pt} of=/dev/null bs=4k count=16 iflag=direct")
        expect_untracked(dst)
        print("on b the guest's writes get RESERVATION CONFLICT, reads "
              "pass; nothing was tracked or journaled")
        guest.shutdown()
    finally:
        src.close()
        dst.close()


if __name__ == "__main__":
    main()
