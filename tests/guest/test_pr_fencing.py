"""Reservations that stay correct when a cluster fences.

One guest (1 vCPU) on a stormigd scsi-block disk (migrate-pr on) over a
tgtd LUN, next to a scsi-hd image disk, migrates between hosts "a" and
"b" three times (QEMU migrate plus the stormigd vmm-stop handoff):

1. Fenced before the migration: the guest registers K1 and reserves
   WRITE EXCLUSIVE; a fencing agent (stormig-prtest fence: its own
   initiator, one session) registers F and PREEMPTs K1.  The migration
   completes and the VM runs on the destination with every disk: the
   scsi-hd passes fio verify; on the LUN nothing is registered for the
   guest (the fencing node's F alone, holding WRITE EXCLUSIVE), its
   first command reports UNIT ATTENTION, REGISTRATIONS PREEMPTED, its
   writes get RESERVATION CONFLICT and its reads pass; query-devices
   shows pr-key 0 and pr-fenced K1.
2. Fenced with the guest's own key: the guest registers K2 and reserves;
   the fencing agent registers K2 too and PREEMPTs K2.  READ KEYS and
   READ RESERVATION look as before the fence; after the migration the
   fencing node still holds it and the guest's write gets RESERVATION
   CONFLICT (the destination did not preempt the fencing node).
3. WRITE EXCLUSIVE - ALL REGISTRANTS: after the handoff the LUN reports
   K3 registered once and the reservation with key 0 and type we-ar; a
   new, unregistered session may read and not write (SPC-4 5.13.1
   table), also after further logins; the guest writes (fio verify).

Between scenarios the guest registers (ignoring any key) and CLEARs, so
each starts from an empty LUN.
"""

import guestlib
import prlib
import vhostlib
from guestcheck import fio_verify

IMAGE_SIZE = 16 << 20
LUN_SIZE = 16 << 20
FIO_SIZE = 2 << 20
K1 = 0x5703fe4ce0000001
K2 = 0x5703fe4ce0000002
K3 = 0x5703fe4ce0000003
FENCER_KEY = 0x5703fe4cefe4ce01
FENCER = "iqn.2024-01.org.stormig.test:fencing-agent"
# A long name: tgt's copies of it are heap blocks of a registration's
# size, which is how a registration freed under the reservation shows.
NEWCOMER = "iqn.2024-01.org.stormig.test:newcomer-after-the-handoff"
WE = prlib.BY_SHORT["we"]
WE_AR = prlib.BY_SHORT["we-ar"]


def main():
    vhostlib.main_with_disks(__doc__, run, IMAGE_SIZE, LUN_SIZE)


def fence(url, prtype, key, victim):
    rc, out = prlib.prtest("fence", url, FENCER, prtype.short, f"{key:#x}",
                           f"{victim:#x}")
    if rc != 0 or out.strip() != prlib.STATUS_GOOD:
        raise guestlib.GuestError(f"stormig-prtest fence failed:\n{out}")


def clear_lun(guest, dev, url):
    """The guest registers (ignoring any key it had) and CLEARs: no
    registration and no reservation left."""
    guest.check(f"sg_persist --out --register-ignore --param-sark={K3:#x} "
                f"{dev}")
    prlib.guest_clear(guest, dev, K3)
    seen = prlib.show(url)
    if seen["keys"] or seen["type"]:
        raise guestlib.GuestError(f"after CLEAR: {seen['text']}")


def sg_read(guest, dev):
    """sg_raw READ(10) of one block: its output (status and sense)."""
    out, _ = guest.run(f"sg_raw -r 512 {dev} 28 00 00 00 00 10 00 00 01 00 "
                       "2>&1")
    return out


def expect_guest_fenced(guest, dev, what):
    first = sg_read(guest, dev)
    if "Registrations preempted" not in first:
        raise guestlib.GuestError(f"{what}: the guest's first command did "
                                  f"not report REGISTRATIONS PREEMPTED:\n"
                                  f"{first}")
    status = prlib.guest_write_status(guest, dev)
    if status != "Reservation Conflict":
        raise guestlib.GuestError(f"{what}: a fenced guest's WRITE got "
                                  f"{status}")
    again = sg_read(guest, dev)
    status = next((line.split("SCSI Status:", 1)[1].strip()
                   for line in again.splitlines() if "SCSI Status:" in line),
                  "Good")
    if status != "Good":
        raise guestlib.GuestError(f"{what}: the fenced guest's READ under "
                                  f"WRITE EXCLUSIVE failed:\n{again}")


def expect_fencer_holds(url, key, what):
    seen = prlib.show(url)
    if seen["keys"] != [key] or seen["type"] != "we" or seen["key"] != key:
        raise guestlib.GuestError(f"{what}: expected only the fencing "
                                  f"node's {key:#x} holding WRITE EXCLUSIVE; "
                                  f"the LUN shows:\n{seen['text']}")


def expect_fenced_device(host, key, what):
    info = prlib.device_info(host)
    if (info["pr-key"] != "0x0000000000000000" or
            info.get("pr-fenced") != f"{key:#018x}" or
            not info["pr-active"] or "pr-takeover-ms" in info):
        raise guestlib.GuestError(f"{what}: query-devices: {info}")


def hop(cfg, src, name):
    """Migrate src to a new host called name; returns it (src closed)."""
    dst = vhostlib.Host(cfg, name, incoming=True)
    try:
        dst.await_incoming(src)
        stats = vhostlib.migrate(src, dst)
    except BaseException:
        dst.close()
        src.close()
        raise
    print(f"{src.name} -> {name}: {vhostlib.format_stats(stats)}")
    return dst


def fenced_before(cfg, host, hd, pt, fencer_key, key, what):
    url = cfg["lun_url"]
    prlib.guest_register(host.guest, pt, key)
    prlib.guest_reserve(host.guest, pt, key, WE)
    fence(url, WE, fencer_key, key)
    expect_fencer_holds(url, fencer_key, f"{what}, before the migration")
    host = hop(cfg, host, "b" if host.name == "a" else "a")
    expect_fencer_holds(url, fencer_key, f"{what}, after the migration")
    expect_fenced_device(host, key, what)
    expect_guest_fenced(host.guest, pt, what)
    fio_verify(host.guest, hd, FIO_SIZE)
    expect_fencer_holds(url, fencer_key, f"{what}, after the guest's I/O")
    print(f"{what}: the VM runs on {host.name} with every disk; the LUN "
          "answers it as a preempted initiator")
    return host


def all_registrants(cfg, host, pt):
    url = cfg["lun_url"]
    prlib.guest_register(host.guest, pt, K3)
    prlib.guest_reserve(host.guest, pt, K3, WE_AR)
    host = hop(cfg, host, "b" if host.name == "a" else "a")
    for i in range(3):
        prlib.expect_held(url, K3, WE_AR, f"we-ar after the handoff ({i})")
        read = prlib.fresh_rw(url, NEWCOMER, "read")
        write = prlib.fresh_rw(url, NEWCOMER, "write")
        if read != prlib.STATUS_GOOD or write != prlib.STATUS_CONFLICT:
            raise guestlib.GuestError(f"we-ar: an unregistered newcomer "
                                      f"got {read} for READ and {write} "
                                      f"for WRITE:\n{prlib.show(url)['text']}")
    status = prlib.guest_write_status(host.guest, pt)
    if status != "Good":
        raise guestlib.GuestError(f"we-ar: the guest's WRITE got {status}")
    fio_verify(host.guest, pt, FIO_SIZE)
    info = guestlib.wait_for(
        lambda: next((i for i in [prlib.device_info(host)]
                      if i.get("pr-check") != "pending"), None),
        5, "pr-check")
    if info.get("pr-check") != "ok":
        raise guestlib.GuestError(f"we-ar: query-devices: {info}")
    print(f"we-ar: K3 registered once, key 0 type we-ar, a newcomer reads "
          f"and may not write; pr-check ok")
    return host


def run(cfg):
    host = vhostlib.Host(cfg, "a")
    try:
        print(f"boot to prompt {host.boot():.1f}s")
        hd, pt = vhostlib.guest_disks(host.guest)
        host = fenced_before(cfg, host, hd, pt, FENCER_KEY, K1,
                             "fenced before the migration")
        clear_lun(host.guest, pt, cfg["lun_url"])
        host = fenced_before(cfg, host, hd, pt, K2, K2,
                             "fenced with the guest's own key")
        clear_lun(host.guest, pt, cfg["lun_url"])
        host = all_registrants(cfg, host, pt)
        host.guest.shutdown()
    finally:
        host.close()


if __name__ == "__main__":
    main()
