"""Switchover of a SCSI controller with a reservation held: the test
guest of tests/guest (QEMU 7.2, TCG) on a vhost-user-scsi controller
served by stormigd (a scsi-hd on an image file and a scsi-block on a tgt
LUN) registers a key, takes an EXCLUSIVE ACCESS reservation and runs fio
verify on the LUN while the VM migrates back and forth between two hosts
("a" and "b", each a stormigd and a QEMU), the way tests/guest does it
(vhostlib.migrate: the daemons' migration with "vmm-stop").

Per hop, from both daemons' query-migrate "downtime-parts" and the
destination's query-devices:

  device part   the source daemon's downtime: its stop (once QEMU has
                stopped every ring) -> SWITCHOVER_DONE, i.e. the
                destination holds the disks and the reservation and
                serves the guest
  quiesce       source: devices stopped (in-flight requests completed)
  save          source: state serialised and queued on the channel
  transfer      source waiting for STATE_LOADED, less the destination's
                load: the channel both ways
  load          destination: state received -> loaded
  handoff       ownership of the images: source inactivate (devices'
                hooks, drain, flush, unlock) + destination taking them
  pr takeover   the scsi-block's REGISTER + PREEMPT with their checks
                (its pr-takeover-ms), inside the destination's device
                activation
  activation, other   the rest of the devices' activation (reading the
                reservation back before the takeover, writing the
                reservation journal)
  start         destination: devices started
  other         device part less all of the above: the SWITCHOVER and
                SWITCHOVER_DONE messages and the main loops' latency

QEMU's own downtime (its figure, guest memory included) is reported next
to it. Python 3 standard library only."""

import os
import sys
import time

from benchlib import BenchError, log, summary

IMAGE_SIZE = 16 << 20
LUN_SIZE = 16 << 20
FIO_SIZE = 1 << 20
KEY = 0x5703100b0000be01
ROUND_TRIP_GOAL = 2

PARTS = ("quiesce", "save", "transfer", "load", "handoff", "pr_takeover",
         "activate_other", "start", "other")


def harness(cfg):
    """tests/guest's modules, imported as bench/guest.py does."""
    sys.path.insert(0, os.path.join(cfg["source_root"], "tests", "guest"))
    import guestlib
    import prlib
    import tgtlib
    import vhostlib
    return guestlib, prlib, tgtlib, vhostlib


def parts_of(src_mig, dst_mig, dev):
    """One hop's figures (ms) from the two query-migrate answers and the
    destination's scsi-block entry of query-devices."""
    sp = src_mig.get("downtime-parts")
    dp = dst_mig.get("downtime-parts")
    if not sp or not dp:
        raise BenchError(f"no downtime-parts: source {src_mig}, "
                         f"destination {dst_mig}")
    took = dev.get("pr-takeover-ms")
    if took is None:
        raise BenchError(f"no pr-takeover-ms: the reservation was not "
                         f"taken over: {dev}")
    r = {"device": src_mig["downtime"], "quiesce": sp["stop"],
         "save": sp["save"], "load": dp["load"],
         "transfer": max(0.0, sp["wait-loaded"] - dp["load"]),
         "handoff": sp["inactivate"] + dp["activate-disks"],
         "pr_takeover": took,
         "activate_other": max(0.0, dp["activate-devices"] - took),
         "start": dp["start"],
         "state_bytes": src_mig["device-state-size"],
         "pr_round_trips": dev.get("pr-takeover-round-trips")}
    r["other"] = max(0.0, r["device"] - sum(r[p] for p in PARTS[:-1]))
    return r


def hop(h, cfg, src, n, pt):
    guestlib, prlib, _, vhostlib = h
    dst = vhostlib.Host(cfg, "b" if src.name == "a" else "a", incoming=True)
    rounds = vhostlib.fio_rounds(src.guest, pt)
    try:
        dst.await_incoming(src)
        stats = vhostlib.migrate(src, dst, keep_source=True)
        src_mig = src.daemon.cmd("query-migrate")
        src.close()
        dev = prlib.device_info(dst)
        if not dev.get("pr-active") or int(dev["pr-key"], 16) != KEY:
            raise BenchError(f"hop {n}: the destination does not hold the "
                             f"reservation: {dev}")
        r = parts_of(src_mig, dst.daemon.cmd("query-migrate"), dev)
        r["round"] = n
        r["qemu_downtime"] = stats["qemu_downtime_ms"]
        # fio runs on the destination: a new round finished there.
        guestlib.wait_for(lambda: vhostlib.fio_rounds(dst.guest, pt) >
                          rounds, 60, f"a new fio round after hop {n}",
                          interval=0.5)
    except BaseException:
        dst.close()
        raise
    finally:
        src.close()
    rt = r["pr_round_trips"]
    log(f"  hop {n} {src.name} -> {dst.name}: QEMU {r['qemu_downtime']} ms,"
        f" device part {r['device']:.2f} ms (handoff {r['handoff']:.2f}, "
        f"PR takeover {r['pr_takeover']:.2f} ms, "
        f"{'?' if rt is None else rt} round trips), state "
        f"{r['state_bytes']} bytes")
    return dst, r


def migrate_loop(h, cfg, hops):
    guestlib, prlib, _, vhostlib = h
    prtype = prlib.BY_SHORT["ea"]
    host = vhostlib.Host(cfg, "a")
    rounds = []
    try:
        boot = host.boot()
        log(f"  guest up in {boot:.1f} s")
        pt = vhostlib.guest_disks(host.guest)[-1]
        if pt == "/dev/sda":
            raise BenchError("the guest does not see the scsi-block LUN")
        prlib.guest_register(host.guest, pt, KEY)
        prlib.guest_reserve(host.guest, pt, KEY, prtype)
        vhostlib.fio_loop_start(host.guest, [pt], FIO_SIZE)
        for n in range(1, hops + 1):
            host, r = hop(h, cfg, host, n, pt)
            rounds.append(r)
        done = vhostlib.fio_loop_stop(host.guest, [pt], FIO_SIZE)
        prlib.guest_sees(host.guest, pt, KEY, prtype)
    finally:
        host.close()
    return rounds, boot, done[pt]


def round_trip_goal(rounds):
    trips = [r["pr_round_trips"] for r in rounds
             if r["pr_round_trips"] is not None]
    goal = {"goal": "PR takeover adds at most two round trips to the LUN"}
    if not trips:
        return dict(goal, value=None, met=None,
                    note="not measured: the daemon does not report "
                         "pr-takeover-round-trips")
    return dict(goal, value=max(trips), met=max(trips) <= ROUND_TRIP_GOAL)


def run(cfg):
    hops = cfg["scsi_hops"]
    log(f"switchover-scsi: {hops} guest migrations, EXCLUSIVE ACCESS "
        "reservation held, fio verify running")
    h = harness(cfg)
    guestlib, _, tgtlib, _ = h
    workdir = os.path.join(cfg["workdir"], "switchover-scsi")
    os.makedirs(workdir, exist_ok=True)
    image_file = guestlib.make_disk(os.path.join(workdir, "hd.img"),
                                    IMAGE_SIZE)
    started = time.monotonic()
    try:
        with tgtlib.Tgtd(workdir) as tgtd:
            hcfg = {"workdir": workdir, "image": cfg["guest_image"],
                    "image_file": image_file, "stormigd": cfg["stormigd"],
                    "lun_url": tgtd.add_lun(os.path.join(workdir, "lun.img"),
                                            size=LUN_SIZE)}
            rounds, boot, fio_rounds = migrate_loop(h, hcfg, hops)
    except guestlib.GuestError as e:
        raise BenchError(f"switchover-scsi: {e}") from e
    keys = ["qemu_downtime", "device", "state_bytes", "pr_round_trips"]
    summ = {k: summary([r[k] for r in rounds]) for k in keys + list(PARTS)}
    log(f"  device part median {summ['device']['median']:.2f} ms, PR "
        f"takeover {summ['pr_takeover']['median']:.2f} ms, "
        f"{fio_rounds} fio rounds verified, "
        f"{time.monotonic() - started:.0f} s")
    return {"rounds": rounds, "summary": summ, "boot_s": boot,
            "fio_rounds_verified": fio_rounds,
            "goals": [round_trip_goal(rounds)]}
