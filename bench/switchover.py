"""Switchover: stormig-testvm live-migrates its VM back and forth between
two stormigd daemons serving the same image over vfio-user (NVMe, 4 I/O
queues of 1024 entries, 32 commands in flight per queue), and reports
where each downtime went.

The device part of the downtime (source stop -> destination ready) is
quiesce + save + load + handoff + start; the copy of the VM's last dirty
memory pages is the VMM's part and is reported on its own."""

import os
import re
import subprocess
import threading
import time

from benchlib import BenchError, log, summary

PARTS = ("quiesce", "memory", "save", "load", "handoff", "start")
DEVICE_PARTS = ("quiesce", "save", "load", "handoff", "start")


class Supervised:
    """A stormigd restarted with --incoming defer whenever it quits (the
    source after a completed migration), as migrate-test expects."""

    def __init__(self, cfg, name, image, incoming):
        self.cfg, self.name, self.image = cfg, name, image
        self.stopping = False
        self.log = open(os.path.join(cfg["workdir"], f"mig-{name}.log"),
                        "ab")
        self.proc = self._start(incoming)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def path(self, what):
        return os.path.join(self.cfg["workdir"], f"mig-{self.name}.{what}")

    def _start(self, incoming):
        args = [self.cfg["stormigd"], "--name", self.name,
                "--log-level", "warn",
                "--blockdev", f"driver=file,node-name=d0,"
                f"filename={self.image},cache.direct=on",
                "--device", f"nvme,id=nvme0,socket={self.path('sock')},"
                "drive=d0,serial=BENCHMIG,num-queues=4,mqes=1024",
                "--monitor", f"unix:{self.path('qmp')}"]
        if incoming:
            args += ["--incoming", "defer"]
        return subprocess.Popen(args, stdout=self.log, stderr=self.log)

    def _watch(self):
        while not self.stopping:
            if self.proc.poll() is not None and not self.stopping:
                self.proc = self._start(True)
            time.sleep(0.01)

    def stop(self):
        self.stopping = True
        self.thread.join()
        self.proc.kill()
        self.proc.wait()
        self.log.close()


ROUND = re.compile(r"round (\d+): \w -> other: downtime (\d+) us, device "
                   r"state (\d+) bytes, in flight at stop (\d+)")
TIMES = re.compile(r"round (\d+): times us: quiesce (\d+) memory (\d+) "
                   r"save (\d+) load (\d+) handoff (\d+) start (\d+)")
DAEMONS = re.compile(r"round (\d+): daemons: migrate total ([\d.]+) ms, "
                     r"stopped ([\d.]+) ms")


def parse(out):
    rounds = {}
    for m in ROUND.finditer(out):
        rounds[int(m[1])] = {"downtime_us": int(m[2]),
                             "state_bytes": int(m[3]),
                             "in_flight": int(m[4])}
    for m in TIMES.finditer(out):
        r = rounds.setdefault(int(m[1]), {})
        for i, part in enumerate(PARTS):
            r[part + "_us"] = int(m[2 + i])
    for m in DAEMONS.finditer(out):
        r = rounds.setdefault(int(m[1]), {})
        r["daemon_total_us"] = float(m[2]) * 1000
        r["daemon_stopped_us"] = float(m[3]) * 1000
    out_rounds = []
    for n in sorted(rounds):
        r = rounds[n]
        r["round"] = n
        r["device_us"] = sum(r[p + "_us"] for p in DEVICE_PARTS)
        out_rounds.append(r)
    return out_rounds


def run(cfg):
    log(f"switchover: {cfg['mig_rounds']} NVMe migrations (4 queues x "
        "1024 entries, QD 32)")
    image = os.path.join(cfg["workdir"], "mig.img")
    with open(image, "wb") as f:
        f.truncate(64 << 20)           # the verifying workload wants zeroes
    a = Supervised(cfg, "A", image, False)
    b = Supervised(cfg, "B", image, True)
    try:
        time.sleep(0.3)
        cmd = [cfg["testvm"], "migrate-test", "--src-socket", a.path("sock"),
               "--dst-socket", b.path("sock"), "--src-qmp", a.path("qmp"),
               "--dst-qmp", b.path("qmp"), "--mem", "64M", "--queues", "4",
               "--qd", "32", "--sq-entries", "1024", "--cq-entries", "1024",
               "--namespaces", "1", "--rounds", str(cfg["mig_rounds"]),
               "--round-ms", "100"]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=30 + cfg["mig_rounds"] * 5)
    finally:
        a.stop()
        b.stop()
    with open(os.path.join(cfg["workdir"], "migrate-test.out"), "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0 or "result: PASS" not in r.stdout:
        raise BenchError(f"migrate-test failed:\n{r.stdout[-2000:]}"
                         f"{r.stderr[-1000:]}")
    rounds = parse(r.stdout)
    summ = {k: summary([x[k] for x in rounds])
            for k in ["downtime_us", "device_us", "state_bytes", "in_flight",
                      "daemon_total_us", "daemon_stopped_us"] +
            [p + "_us" for p in PARTS]}
    dev = summ["device_us"]["median"]
    goal = {"goal": "NVMe device part of downtime <= 5 ms (median)",
            "value": dev / 1000, "met": dev <= 5000}
    log(f"  device part median {dev / 1000:.2f} ms, handoff "
        f"{summ['handoff_us']['median'] / 1000:.2f} ms, state "
        f"{summ['state_bytes']['median']:.0f} bytes")
    return {"rounds": rounds, "summary": summ, "goals": [goal],
            "pr_takeover": "see the switchover-scsi section"}
