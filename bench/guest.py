"""Data path with a real guest: the test guest (QEMU 7.2, TCG) runs fio on
its SCSI disk, which is the same image file served

  (a) by stormigd over vhost-user-scsi (vhost-user-scsi-pci in QEMU), and
  (b) by QEMU itself: virtio-scsi-pci on an iothread, scsi-hd on a drive
      with cache=none and aio=io_uring (what a user tuning QEMU picks).

Both guests boot first, then their fio runs alternate, so each ratio
compares runs made seconds apart. (b) opens the image with
file.locking=off: the two processes never do I/O at the same time, and
stormigd holds its own lock on the file. TCG makes every guest
instruction slow, so the absolute figures say more about the emulator
than about either back end; the ratio is the point."""

import json
import os
import sys

from benchlib import BenchError, Daemon, log, ratios, summary

RWS = ("randread", "randwrite")
QDS = (1, 32)


def guestlib(cfg):
    sys.path.insert(0, os.path.join(cfg["source_root"], "tests", "guest"))
    import guestlib as gl
    return gl


def fio_cmd(rw, qd, runtime_s):
    return (f"fio --name=g --filename=/dev/sda --ioengine=io_uring "
            f"--direct=1 --rw={rw} --bs=4k --iodepth={qd} "
            f"--runtime={runtime_s} --time_based --ramp_time=1 "
            f"--norandommap --randrepeat=0 --fixedbufs=1 --registerfiles=1 "
            f"--lat_percentiles=1 --output-format=json")


def guest_fio(guest, rw, qd, runtime_s):
    out = guest.check(fio_cmd(rw, qd, runtime_s), timeout=runtime_s + 120)
    text = out[out.index("{"):out.rindex("}") + 1]
    side = json.loads(text)["jobs"][0]["read" if rw == "randread"
                                       else "write"]
    pct = side["lat_ns"].get("percentile", {})
    return {"iops": side["iops"], "p50_us": pct.get("50.000000", 0) / 1e3,
            "p99_us": pct.get("99.000000", 0) / 1e3}


def boot_stormig(cfg, gl, image, workdir):
    sock = os.path.join(workdir, "guest-vhost.sock")
    d = Daemon(cfg["stormigd"], workdir, "guest-stormigd",
               ["--blockdev", f"driver=file,node-name=img,filename={image},"
                "cache.direct=on",
                "--device", f"vhost-user-scsi,id=scsi0,socket={sock},"
                "num-queues=1",
                "--device", "scsi-hd,id=hd0,drive=img,bus=scsi0,lun=0"],
               wait_for=[sock])
    g = gl.Guest(cfg["guest_image"], workdir, name="bench-vhost-user",
                 extra_args=["-chardev", f"socket,id=c0,path={sock}",
                             "-device", "vhost-user-scsi-pci,chardev=c0,"
                             "num_queues=1"])
    return d, g


def boot_qemu(cfg, gl, image, workdir):
    return gl.Guest(cfg["guest_image"], workdir, name="bench-qemu",
                    extra_args=[
                        "-object", "iothread,id=io0",
                        "-device", "virtio-scsi-pci,id=vs0,iothread=io0,"
                        "num_queues=1",
                        "-drive", f"file={image},format=raw,if=none,id=d0,"
                        "cache=none,aio=io_uring,file.locking=off",
                        "-device", "scsi-hd,drive=d0,bus=vs0.0"])


def start(guest):
    guest.start()
    secs = guest.wait_boot(240)
    guest.check("test -b /dev/sda", timeout=60)
    return secs


def summarize(raw):
    out = {}
    for name in raw:
        out[name] = {}
        for rw in RWS:
            out[name][rw] = {}
            for qd in map(str, QDS):
                runs, ref = raw[name][rw][qd], raw["qemu"][rw][qd]
                p = {k: summary([r[k] for r in runs])
                     for k in ("iops", "p50_us", "p99_us")}
                if name != "qemu":
                    p["iops_ratio"] = summary(ratios(
                        [r["iops"] for r in runs], [r["iops"] for r in ref]))
                out[name][rw][qd] = p
    return out


def measure(cfg, guests):
    raw = {n: {rw: {str(q): [] for q in QDS} for rw in RWS} for n in guests}
    for rep in range(cfg["guest_reps"]):
        log(f" repetition {rep + 1}/{cfg['guest_reps']}")
        for qd in QDS:
            for rw in RWS:
                line = []
                for name, g in guests.items():
                    r = guest_fio(g, rw, qd, cfg["guest_runtime_s"])
                    raw[name][rw][str(qd)].append(r)
                    line.append(f"{name} {r['iops']:.0f} IOPS")
                log(f"  {rw} qd {qd}: " + ", ".join(line))
    return raw


def run(cfg, image):
    log("data path, real guest (TCG): stormigd vhost-user-scsi vs QEMU "
        "virtio-scsi-pci + iothread")
    gl = guestlib(cfg)
    workdir = os.path.join(cfg["workdir"], "guest")
    os.makedirs(workdir, exist_ok=True)
    daemon, ga = boot_stormig(cfg, gl, image, workdir)
    gb = boot_qemu(cfg, gl, image, workdir)
    result = {"boot_s": {}}
    try:
        guests = {}
        for name, g in (("stormigd", ga), ("qemu", gb)):
            try:
                result["boot_s"][name] = start(g)
                guests[name] = g
            except gl.GuestError as e:
                result.setdefault("errors", {})[name] = str(e)[-1500:]
                log(f"  {name} guest did not come up: {str(e)[:300]}")
        if "qemu" not in guests:
            raise BenchError("the reference guest did not boot")
        raw = measure(cfg, guests)
    finally:
        for g in (ga, gb):
            g.close()
        daemon.stop()
    result["runs"] = raw
    result["summary"] = summarize(raw)
    if "stormigd" in guests:
        summ = result["summary"]["stormigd"]
        result["goals"] = [
            {"goal": f"guest {rw} QD {qd}: stormigd / QEMU IOPS >= 1.0",
             "value": summ[rw][str(qd)]["iops_ratio"]["median"],
             "met": summ[rw][str(qd)]["iops_ratio"]["median"] >= 1.0}
            for rw in RWS for qd in QDS]
    else:
        result["goals"] = [{"goal": "guest: stormigd / QEMU IOPS >= 1.0",
                            "value": None, "met": False,
                            "note": "the vhost-user guest did not run"}]
    return result
