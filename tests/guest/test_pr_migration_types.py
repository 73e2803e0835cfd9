"""Persistent reservations move with the VM, for each of the six types.

One guest (1 vCPU) on a stormigd scsi-block disk (migrate-pr on) over a
tgtd LUN migrates back and forth between hosts "a" and "b" (QEMU migrate
plus the stormigd vmm-stop handoff), once per reservation type.  For each
type the guest registers a key and reserves with sg_persist; after the
migration:

* a third initiator (stormig-prtest show) sees the key registered exactly
  once and the reservation of that type held with it;
* the source stormigd, still up after the handoff with its session
  logged in, probes its own I_T nexus (the one the guest used before):
  writes get RESERVATION CONFLICT, reads too under EXCLUSIVE ACCESS types,
  so its registration is gone; a new session with its initiator name
  gets the same (weaker: on tgt every session is a new nexus);
* the guest's I/O on the destination passes (fio verify, and an sg_raw
  WRITE with status Good): the destination's nexus is the registrant
  and, for the single-holder types, the holder;
* the guest itself reads the same key and type; query-devices shows the
  state and the PREEMPT's duration (pr-takeover-ms).

Then the guest clears the reservation and the next type starts.  Before
the first migration the guest's REPORT CAPABILITIES must equal the LUN's
except SIP_C and ATC_C, which read 0.
"""

import time

import guestlib
import prlib
import vhostlib
from guestcheck import fio_verify

IMAGE_SIZE = 16 << 20
LUN_SIZE = 16 << 20
FIO_SIZE = 2 << 20
KEY_BASE = 0x5703a11e00000000


def main():
    vhostlib.main_with_disks(__doc__, run, IMAGE_SIZE, LUN_SIZE, x_lun_caps=True)


def check_caps(guest, dev, url):
    """The daemons run scsi-block with x-lun-caps=on: the LUN's REPORT
    CAPABILITIES reaches stormigd with SIP_C and ATC_C set (tgt itself
    reports neither), and migrate-pr=on must clear exactly those two."""
    seen = prlib.caps_fields(prlib.guest_caps(guest, dev))
    lun = prlib.lun_caps(url)
    want = {k: lun[k] for k in seen}
    want["sip_c"] = want["atc_c"] = 0
    if seen != want:
        raise guestlib.GuestError(f"REPORT CAPABILITIES: the guest sees "
                                  f"{seen}, the LUN sends {lun}")
    print(f"REPORT CAPABILITIES in the guest: {seen} (LUN: {lun})")


def one_type(cfg, src, name, prtype, key, dev):
    url = cfg["lun_url"]
    guest = src.guest
    prlib.guest_register(guest, dev, key)
    prlib.guest_reserve(guest, dev, key, prtype)
    prlib.expect_held(url, key, prtype, f"{prtype.short} before migration")
    dst = vhostlib.Host(cfg, name, incoming=True)
    try:
        dst.await_incoming(src)
        started = time.monotonic()
        stats = vhostlib.migrate(src, dst, keep_source=True)
        elapsed = time.monotonic() - started
        prlib.expect_held(url, key, prtype, f"{prtype.short} after migration")
        prlib.expect_source_lost(src, prtype, url)
    except BaseException:
        dst.close()
        raise
    finally:
        src.close()
    guest = dst.guest
    status = prlib.guest_write_status(guest, dev)
    if status != "Good":
        raise guestlib.GuestError(f"{prtype.short}: guest WRITE on the "
                                  f"destination got {status}")
    fio_verify(guest, dev, FIO_SIZE)
    prlib.guest_sees(guest, dev, key, prtype)
    # The outcome check runs just after the device started.
    info = guestlib.wait_for(
        lambda: next((i for i in [prlib.device_info(dst)]
                      if i.get("pr-check") != "pending"), None),
        5, f"pr-check on {name}")
    if (info["pr-key"] != f"{key:#018x}" or info["pr-type"] != prtype.short
            or not info["pr-active"] or info.get("pr-check") != "ok"):
        raise guestlib.GuestError(f"query-devices on {name}: {info}")
    print(f"{prtype.short:6} {src.name} -> {name} in {elapsed:.1f}s: "
          f"handoff {stats['handoff_downtime_ms']:.1f} ms, PR takeover "
          f"{info['pr-takeover-ms']:.1f} ms in "
          f"{info['pr-takeover-round-trips']} round trips, QEMU downtime "
          f"{stats['qemu_downtime_ms']} ms; holder moved, source nexus "
          "gets RESERVATION CONFLICT, guest I/O verified")
    prlib.guest_clear(guest, dev, key)
    seen = prlib.show(url)
    if seen["keys"] or seen["type"]:
        raise guestlib.GuestError(f"after CLEAR: {seen['text']}")
    return dst


def run(cfg):
    host = vhostlib.Host(cfg, "a")
    try:
        print(f"boot to prompt {host.boot():.1f}s")
        hd, pt = vhostlib.guest_disks(host.guest)
        check_caps(host.guest, pt, cfg["lun_url"])
        for i, prtype in enumerate(prlib.TYPES):
            name = "b" if host.name == "a" else "a"
            host = one_type(cfg, host, name, prtype, KEY_BASE + i + 1, pt)
        host.guest.shutdown()
    finally:
        host.close()


if __name__ == "__main__":
    main()
