"""Persistent reservations seen from every side of a migration test.

* The guest registers and reserves with sg_persist on its scsi-block disk.
* A third initiator (stormig-prtest show, its own initiator name) reads
  the LUN's keys and reservation, as another cluster node would.
* probe(host) asks the LUN whether a stormigd's *own* I_T nexus (the
  session the guest's commands used) may read or write: a READ(10) or
  WRITE(10) of length 0 sent by that daemon (QMP x-scsi-block-probe,
  only while its VM is stopped). tgt keys registrations by session, so a
  fresh session with the same initiator name is another, unregistered
  nexus: fresh_rw() checks what such a newcomer gets, probe() what the
  source's real nexus gets.

Python 3 standard library only.
"""

import os
import subprocess

import guestlib

OBSERVER = "iqn.2024-01.org.stormig.test:observer"
STATUS_GOOD = "GOOD"
STATUS_CONFLICT = "RESERVATION CONFLICT"


class PrType:
    def __init__(self, code, short, name, sg_name):
        self.code = code
        self.short = short
        self.name = name
        self.sg_name = sg_name      # as sg_persist prints it
        self.all_registrants = code in (7, 8)
        self.exclusive_access = code in (3, 6, 8)


TYPES = [PrType(1, "we", "WRITE EXCLUSIVE", "Write Exclusive"),
         PrType(3, "ea", "EXCLUSIVE ACCESS", "Exclusive Access"),
         PrType(5, "we-ro", "WRITE EXCLUSIVE - REGISTRANTS ONLY",
                "Write Exclusive, registrants only"),
         PrType(6, "ea-ro", "EXCLUSIVE ACCESS - REGISTRANTS ONLY",
                "Exclusive Access, registrants only"),
         PrType(7, "we-ar", "WRITE EXCLUSIVE - ALL REGISTRANTS",
                "Write Exclusive, all registrants"),
         PrType(8, "ea-ar", "EXCLUSIVE ACCESS - ALL REGISTRANTS",
                "Exclusive Access, all registrants")]
BY_SHORT = {t.short: t for t in TYPES}


def find_prtest():
    path = os.environ.get("STORMIG_PRTEST")
    if not path or not os.access(path, os.X_OK):
        raise guestlib.GuestError("STORMIG_PRTEST does not name "
                                  "stormig-prtest")
    return path


def prtest(*args):
    result = subprocess.run([find_prtest()] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=60)
    return result.returncode, result.stdout.decode(errors="replace")


def show(url):
    """What the third initiator sees: {"keys": [...], "key": K|None,
    "type": short|None}."""
    rc, out = prtest("show", url, OBSERVER)
    if rc != 0:
        raise guestlib.GuestError(f"stormig-prtest show failed:\n{out}")
    seen = {"keys": [], "key": None, "type": None, "text": out.strip()}
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["keys"] and words[1:] != ["none"]:
            seen["keys"] = [int(w, 16) for w in words[1:]]
        elif words[:2] == ["reservation", "key"]:
            seen["key"] = int(words[2], 16)
            seen["type"] = words[4]
    return seen


def expect_held(url, key, prtype, what):
    """The LUN has key registered exactly once and the reservation of
    prtype held with it (key 0 for the ALL REGISTRANTS types)."""
    seen = show(url)
    want_key = 0 if prtype.all_registrants else key
    if (seen["keys"] != [key] or seen["type"] != prtype.short or
            seen["key"] != want_key):
        raise guestlib.GuestError(
            f"{what}: the third initiator expected key {key:#x} registered "
            f"once and {prtype.short} held with {want_key:#x}; it sees:\n"
            f"{seen['text']}")
    return seen


def fresh_rw(url, initiator, op):
    """Status of a one-block READ/WRITE from a new session named
    initiator (a new, unregistered I_T nexus on tgt)."""
    rc, out = prtest("rw", url, initiator, op, "8")
    if rc != 0:
        raise guestlib.GuestError(f"stormig-prtest rw failed:\n{out}")
    return out.strip()


def probe(host, op):
    """Status a stopped stormigd's own nexus gets for op (read/write)."""
    return host.daemon.cmd("x-scsi-block-probe",
                           {"id": "pt0", "op": op})["status"]


def expect_probe(host, op, want, what):
    got = probe(host, op)
    if got != want:
        raise guestlib.GuestError(f"{what}: {op} on {host.name}'s own "
                                  f"nexus got {got}, expected {want}")
    return got


def expect_source_lost(src, prtype, url):
    """After the handoff: the source's own nexus is unregistered, so
    writes conflict under every type and reads under the EXCLUSIVE ACCESS
    ones (SPC-4 5.13.1 table); a newcomer with its name fares the same."""
    expect_probe(src, "write", STATUS_CONFLICT, "source after handoff")
    expect_probe(src, "read", STATUS_CONFLICT if prtype.exclusive_access
                 else STATUS_GOOD, "source after handoff")
    got = fresh_rw(url, src.initiator, "write")
    if got != STATUS_CONFLICT:
        raise guestlib.GuestError(f"a new session named {src.initiator} "
                                  f"wrote with status {got}")


def device_info(host):
    return next(d for d in host.daemon.cmd("query-devices")
                if d["id"] == "pt0")


# --- the guest ------------------------------------------------------------

def guest_register(guest, dev, key):
    guest.check(f"sg_persist --out --register --param-sark={key:#x} {dev}")


def guest_reserve(guest, dev, key, prtype):
    guest.check(f"sg_persist --out --reserve --param-rk={key:#x} "
                f"--prout-type={prtype.code} {dev}")


def guest_clear(guest, dev, key):
    guest.check(f"sg_persist --out --clear --param-rk={key:#x} {dev}")


def guest_sees(guest, dev, key, prtype):
    """The guest's own READ KEYS / READ RESERVATION agree."""
    keys = guest.check(f"sg_persist --in --read-keys {dev}")
    res = guest.check(f"sg_persist --in --read-reservation {dev}")
    want_key = 0 if prtype.all_registrants else key
    if (f"{key:#x}" not in keys or f"Key={want_key:#x}" not in res or
            f"type: {prtype.sg_name}\n" not in res + "\n"):
        raise guestlib.GuestError(f"the guest sees:\n{keys}\n{res}")


def guest_write_status(guest, dev):
    """sg_raw WRITE(10) of one block at LBA 16 from the guest: the SCSI
    status sg_raw reports ("Good" when none)."""
    out, status = guest.run(f"dd if=/dev/zero bs=512 count=1 2>/dev/null | "
                            f"sg_raw -s 512 {dev} 2a 00 00 00 00 10 00 00 01 "
                            "00 2>&1")
    for line in out.splitlines():
        if "SCSI Status:" in line:
            return line.split("SCSI Status:", 1)[1].strip()
    if status == 0:
        return "Good"
    raise guestlib.GuestError(f"sg_raw failed ({status}):\n{out}")


def guest_caps(guest, dev):
    """REPORT CAPABILITIES as the guest receives it: the 8 bytes."""
    out = guest.check(f"sg_raw -r 8 {dev} 5e 02 00 00 00 00 00 00 08 00 "
                      "2>&1")
    data = []
    for line in out.splitlines():
        words = line.split()
        # sg_raw hex lines: " 00     00 08 0c 81 ea 01 00 00 ..."
        if len(words) > 1 and all(len(w) == 2 for w in words[1:9]):
            try:
                data += [int(w, 16) for w in words[1:] if len(w) == 2]
            except ValueError:
                continue
    if len(data) < 8:
        raise guestlib.GuestError(f"unreadable sg_raw output:\n{out}")
    return bytes(data[:8])


def lun_caps(url):
    """REPORT CAPABILITIES fields as a third initiator reads them."""
    rc, out = prtest("caps", url, OBSERVER)
    if rc != 0:
        raise guestlib.GuestError(f"stormig-prtest caps failed:\n{out}")
    words = out.split()
    return {words[i]: int(words[i + 1], 0) for i in range(0, len(words), 2)}


def caps_fields(data):
    """The guest's bytes decoded like stormig-prtest caps (SPC-4 6.14.4)."""
    return {"crh": data[2] >> 4 & 1, "sip_c": data[2] >> 3 & 1,
            "atc_c": data[2] >> 2 & 1, "ptpl_c": data[2] & 1,
            "tmv": data[3] >> 7 & 1,
            "type_mask": data[4] << 8 | data[5]}
