"""Memory: peak resident memory (VmHWM) of stormigd with 1, 2 and 4
devices and with 1, 2 and 4 queues per device, each device on its own
small image and driven by stormig-testvm for a moment first so its data
path has run. The cost of
one more device or queue is the least-squares slope over those points."""

import os

from benchlib import Daemon, log, retried, run_json_line, summary

COUNTS = (1, 2, 4)


def device_args(kind, i, queues, wd):
    """Device i with a disk of its own (a small sparse image): devices do
    not share a block node, as in a VM."""
    sock = os.path.join(wd, f"mem-{kind}{i}.sock")
    image = os.path.join(wd, f"mem-{i}.img")
    if not os.path.exists(image):
        with open(image, "wb") as f:
            f.truncate(64 << 20)
    if kind == "nvme":
        dev = [f"nvme,id=nvme{i},socket={sock},drive=img{i},serial=M{i},"
               f"num-queues={queues}"]
    else:
        dev = [f"vhost-user-scsi,id=scsi{i},socket={sock},"
               f"num-queues={queues}",
               f"scsi-hd,id=hd{i},drive=img{i},bus=scsi{i},lun=0"]
    return sock, ["--blockdev", f"driver=file,node-name=img{i},"
                  f"filename={image},cache.direct=on"] + \
        [a for d in dev for a in ("--device", d)]


def measure(cfg, kind, devices, queues, retries):
    return retried(f"memory {kind} {devices} devices {queues} queues",
                   lambda: measure_once(cfg, kind, devices, queues),
                   retries)


def measure_once(cfg, kind, devices, queues):
    wd = cfg["workdir"]
    args = []
    socks = []
    for i in range(devices):
        sock, dargs = device_args(kind, i, queues, wd)
        socks.append(sock)
        args += dargs
    d = Daemon(cfg["stormigd"], wd, f"mem-{kind}", args, wait_for=socks)
    try:
        for sock in socks:
            argv = [cfg["testvm"], "bench", "--socket", sock, "--queues",
                    str(queues), "--qd", "32", "--namespaces", "1",
                    "--blocks", "0", "--mem", "64M", "--write-pct", "50",
                    "--runtime-ms", "400", "--ramp-ms", "100"]
            if kind == "vhost-scsi":
                argv += ["--transport", "vhost-user"]
            run_json_line(argv, timeout=60)
        return d.vm_hwm_kib()
    finally:
        d.stop()


def slope(xs, ys):
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den


def run(cfg, image):
    log("memory: VmHWM of stormigd per device and per queue")
    out = {"retries": []}
    for kind in ("nvme", "vhost-scsi"):
        per_dev = {n: [] for n in COUNTS}
        per_q = {n: [] for n in COUNTS}
        for _ in range(cfg["mem_reps"]):
            for n in COUNTS:
                per_dev[n].append(measure(cfg, kind, n, 1, out["retries"]))
                per_q[n].append(measure(cfg, kind, 1, n, out["retries"]))
        dev_med = [summary(per_dev[n])["median"] for n in COUNTS]
        q_med = [summary(per_q[n])["median"] for n in COUNTS]
        out[kind] = {
            "hwm_kib_by_devices": {str(n): summary(per_dev[n])
                                   for n in COUNTS},
            "hwm_kib_by_queues": {str(n): summary(per_q[n])
                                  for n in COUNTS},
            "kib_per_device": slope(COUNTS, dev_med),
            "kib_per_queue": slope(COUNTS, q_med),
        }
        log(f"  {kind}: {out[kind]['kib_per_device']:.0f} KiB per device "
            f"(1 queue), {out[kind]['kib_per_queue']:.0f} KiB per queue; "
            f"1 device 1 queue: {dev_med[0]} KiB")
    return out
