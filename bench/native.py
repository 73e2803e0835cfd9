"""Data path with the project's own client: stormig-testvm drives the NVMe
controller (vfio-user) and the virtio-scsi controller (vhost-user) of one
stormigd; fio (io_uring, direct) reads and writes the same image file with
the same block size and depth. The three alternate within each
repetition, so each ratio compares runs made seconds apart."""

import json
import os
import subprocess

from benchlib import (BenchError, Daemon, log, ratios, retried,
                      run_json_line, summary)

RWS = ("randread", "randwrite")
QDS = (1, 32, 128)
CLIENTS = ("nvme", "vhost-scsi")


def fio_run(image, rw, qd, runtime_ms, ramp_ms):
    """fio as a user tuning it would run it: io_uring, O_DIRECT,
    registered file and fixed buffers."""
    argv = ["fio", "--name=ref", f"--filename={image}",
            "--ioengine=io_uring", "--direct=1", f"--rw={rw}", "--bs=4k",
            f"--iodepth={qd}", f"--runtime={runtime_ms}ms", "--time_based",
            f"--ramp_time={ramp_ms}ms", "--fixedbufs=1", "--registerfiles=1",
            "--norandommap", "--randrepeat=0", "--lat_percentiles=1",
            "--output-format=json"]
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=runtime_ms / 1000 + 60)
    if r.returncode != 0:
        raise BenchError(f"fio failed: {r.stderr[-1000:]}")
    job = json.loads(r.stdout)["jobs"][0]
    side = job["read" if rw == "randread" else "write"]
    pct = side["lat_ns"].get("percentile", {})
    return {"iops": side["iops"],
            "p50_us": pct.get("50.000000", 0) / 1e3,
            "p99_us": pct.get("99.000000", 0) / 1e3,
            "lat_mean_us": side["lat_ns"]["mean"] / 1e3}


def testvm_run(testvm, client, sock, rw, qd, runtime_ms, ramp_ms):
    argv = [testvm, "bench", "--socket", sock, "--queues", "1",
            "--qd", str(qd), "--namespaces", "1", "--blocks", "0",
            "--mem", "64M", "--write-pct", "0" if rw == "randread" else "100",
            "--runtime-ms", str(runtime_ms), "--ramp-ms", str(ramp_ms)]
    if client == "vhost-scsi":
        argv += ["--transport", "vhost-user"]
    return run_json_line(argv, timeout=runtime_ms / 1000 + 60)


def start_daemon(cfg, image, client):
    """A fresh stormigd serving the image to one client: each device has
    the disk to itself, as it would in a VM."""
    wd = cfg["workdir"]
    sock = os.path.join(wd, f"native-{client}.sock")
    args = ["--blockdev", f"driver=file,node-name=img,filename={image},"
            "cache.direct=on"]
    if client == "nvme":
        args += ["--device", f"nvme,id=nvme0,socket={sock},drive=img,"
                 "serial=BENCH,num-queues=4"]
    else:
        args += ["--device", f"vhost-user-scsi,id=scsi0,socket={sock},"
                 "num-queues=1",
                 "--device", "scsi-hd,id=hd0,drive=img,bus=scsi0,lun=0"]
    return Daemon(cfg["stormigd"], wd, "native-" + client, args,
                  wait_for=[sock]), sock


def client_run(cfg, image, client, rw, qd):
    """One testvm run on a fresh daemon."""
    d, sock = start_daemon(cfg, image, client)
    try:
        return testvm_run(cfg["testvm"], client, sock, rw, qd,
                          cfg["runtime_ms"], cfg["ramp_ms"])
    finally:
        d.stop()


def one_point(cfg, image, rw, qd, raw, retries):
    rt, ramp = cfg["runtime_ms"], cfg["ramp_ms"]
    res = {"fio": fio_run(image, rw, qd, rt, ramp)}
    for c in CLIENTS:
        res[c] = retried(f"{c} {rw} QD {qd}",
                         lambda: client_run(cfg, image, c, rw, qd), retries)
    for name, r in res.items():
        raw.setdefault(name, {}).setdefault(rw, {}).setdefault(
            str(qd), []).append(r)
    log(f"  {rw} qd {qd}: " + ", ".join(
        f"{n} {r['iops']:.0f} IOPS p50 {r['p50_us']:.0f} us"
        for n, r in res.items()))


def summarize(raw):
    out = {}
    for name, per_rw in raw.items():
        for rw, per_qd in per_rw.items():
            for qd, runs in per_qd.items():
                ref = raw["fio"][rw][qd]
                point = {k: summary([r[k] for r in runs])
                         for k in ("iops", "p50_us", "p99_us")}
                if name != "fio":
                    point["iops_ratio"] = summary(ratios(
                        [r["iops"] for r in runs], [r["iops"] for r in ref]))
                    point["p50_ratio"] = summary(ratios(
                        [r["p50_us"] for r in runs],
                        [r["p50_us"] for r in ref]))
                    point["p99_ratio"] = summary(ratios(
                        [r["p99_us"] for r in runs],
                        [r["p99_us"] for r in ref]))
                out.setdefault(name, {}).setdefault(rw, {})[qd] = point
    return out


def goals(summ):
    """>= 85 % of fio's IOPS at QD 32 and 128; QD 1 median latency
    within 1.5x of fio's."""
    res = []
    for c in CLIENTS:
        for rw in RWS:
            for qd in ("32", "128"):
                r = summ[c][rw][qd]["iops_ratio"]["median"]
                res.append({"goal": f"{c} {rw} QD {qd} IOPS >= 0.85 x fio",
                            "value": r, "met": r >= 0.85})
            r = summ[c][rw]["1"]["p50_ratio"]["median"]
            res.append({"goal": f"{c} {rw} QD 1 p50 latency <= 1.5 x fio",
                        "value": r, "met": r <= 1.5})
    return res


def run(cfg, image):
    log("data path, native client: fio vs testvm over NVMe and "
        "virtio-scsi")
    raw, retries = {}, []
    for rep in range(cfg["reps"]):
        log(f" repetition {rep + 1}/{cfg['reps']}")
        for qd in QDS:
            for rw in RWS:
                one_point(cfg, image, rw, qd, raw, retries)
    summ = summarize(raw)
    return {"runs": raw, "summary": summ, "goals": goals(summ),
            "retries": retries}
