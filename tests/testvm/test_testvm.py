"""stormig-testvm against real stormigd daemons: the workload over
vfio-user, back-and-forth live migrations, a CQ-full backlog across a
migration (completions in the controller's order), async events raised
before and during a migration, the allowlist refusal, cancel /
destination failure, and guest memory mapped without an fd (the device
reaches it with DMA_READ / DMA_WRITE requests), also across migrations.

Two daemons A and B serve the same images (shared storage) on their own
vfio-user and QMP sockets. A supervisor restarts a daemon that quits
(the source after a completed migration, or a destination we made quit)
at the same paths with --incoming defer, as migrate-test expects."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time


class Supervisor:
    def __init__(self, stormigd, wd, name, extra, incoming):
        self.stormigd, self.wd, self.name = stormigd, wd, name
        self.extra, self.stopping = extra, False
        self.log = open(os.path.join(wd, name + ".log"), "ab")
        self.proc = self._start(incoming)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def path(self, what):
        return os.path.join(self.wd, f"{self.name}.{what}")

    def _start(self, incoming):
        args = [self.stormigd, "--name", self.name]
        for i in range(2):
            args += ["--blockdev", f"driver=file,node-name=d{i},"
                     f"filename={os.path.join(self.wd, f'd{i}.img')}"]
        args += ["--device", f"nvme,id=nvme0,socket={self.path('sock')},"
                 f"drive=d0:d1,serial=TESTVM,num-queues=4{self.extra}",
                 "--monitor", f"unix:{self.path('qmp')}"]
        if incoming:
            args += ["--incoming", "defer"]
        return subprocess.Popen(args, stdout=self.log, stderr=self.log)

    def _watch(self):
        while not self.stopping:
            if self.proc.poll() is not None and not self.stopping:
                self.proc = self._start(True)
            time.sleep(0.02)

    def stop(self):
        self.stopping = True
        self.proc.kill()
        self.proc.wait()


def run_case(args, name):
    wd = tempfile.mkdtemp(prefix="testvm-")
    extra = ",wrr=on" if name == "allowlist" else ""
    for i in range(2):
        with open(os.path.join(wd, f"d{i}.img"), "wb") as f:
            f.truncate(16 << 20)
    a = Supervisor(args.stormigd, wd, "A", extra, False)
    b = Supervisor(args.stormigd, wd, "B", extra, True)
    common = ["--mem", "64M", "--queues", "4", "--qd", "32",
              "--namespaces", "2"]
    if name in RUN_CASES:
        cmd = [args.testvm, "run", "--socket", a.path("sock")] + common
        cmd += RUN_CASES[name]
    else:
        cmd = [args.testvm, "migrate-test", "--src-socket", a.path("sock"),
               "--dst-socket", b.path("sock"), "--src-qmp", a.path("qmp"),
               "--dst-qmp", b.path("qmp"), "--round-ms", "150"] + common
        cmd += CASES[name]
    ok = False
    try:
        time.sleep(0.3)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=50)
        print(r.stdout)
        print(r.stderr, file=sys.stderr)
        ok = check(name, r) and "runtime error:" not in r.stderr
    finally:
        a.stop()
        b.stop()
        ok = daemons_clean(wd) and ok
        if os.environ.get("TESTVM_KEEP"):
            print("kept", wd)
        else:
            shutil.rmtree(wd, ignore_errors=True)
    return ok


def daemons_clean(wd):
    """A sanitizer report in a daemon's log fails the test (ASan builds;
    UBSan goes on running after its report)."""
    clean = True
    for name in ("A", "B"):
        with open(os.path.join(wd, name + ".log"), errors="replace") as f:
            log = f.read()
        if "AddressSanitizer" in log or "runtime error:" in log:
            print(f"daemon {name} reported a sanitizer error:\n{log}")
            clean = False
    return clean


def check(name, r):
    out = r.stdout
    if name == "allowlist":
        ok = (r.returncode != 0 and "refused before starting" in r.stderr
              and "weighted round robin" in r.stderr
              and "downtime" not in out)
        return ok
    if r.returncode != 0 or "result: PASS" not in out:
        return False
    # What the guest checked: no data mismatch, no failed command, no
    # completion for a command not in flight (doubled or invented), none
    # missing at the end.
    if ("errors: verify 0, io 0, protocol 0, never completed 0"
            not in out):
        return False
    if name == "rounds":
        rounds = re.findall(r"round \d+: . -> other: downtime (\d+) us, "
                            r"device state (\d+) bytes, in flight at stop "
                            r"(\d+),", out)
        return (len(rounds) == 10 and "migrations 10," in out and
                all(int(n) > 0 for _, _, n in rounds))
    if name == "cq-full":
        m = re.search(r"cq order: queue 1: (\d+) completions at stop \(\d+ "
                      r"in the CQ, (\d+) pending in the device\), (\d+) "
                      r"taken on the destination, (\d+) in the recorded "
                      r"order: in order", out)
        return bool(m) and int(m.group(2)) > 0 and \
            m.group(1) == m.group(3) == m.group(4)
    if name == "aen":
        return ("async events on the destination: 2 (temperature "
                "delivered, namespace change delivered)" in out)
    if name == "dma-no-fd-migrate":
        # Each stop quiesced a device whose commands wait for DMA replies.
        return "migrations 4," in out
    if name == "dma-no-fd":
        m = re.search(r"device DMA requests answered: (\d+)", out)
        return bool(m) and int(m.group(1)) > 0
    return True


CASES = {
    "rounds": ["--rounds", "10"],
    "cq-full": ["--rounds", "2", "--cq-entries", "4", "--queues", "1",
                "--cq-stall"],
    "allowlist": ["--rounds", "1", "--wrr"],
    "aen": ["--rounds", "2", "--aen-test"],
    "dst-fail": ["--rounds", "2", "--dst-fail", "--fail-round", "0"],
    "dma-no-fd-migrate": ["--rounds", "4", "--dma-no-fd"],
}
RUN_CASES = {
    "dma-no-fd": ["--seconds", "1", "--dma-no-fd"],
}
for phase in ("setup", "precopy", "stop", "stop-copy", "resume",
              "switchover"):
    CASES["cancel-" + phase] = ["--rounds", "2", "--fail-at", phase,
                                "--fail-round", "0"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stormigd", required=True)
    p.add_argument("--testvm", required=True)
    p.add_argument("case", choices=sorted(CASES) + sorted(RUN_CASES))
    args = p.parse_args()
    sys.exit(0 if run_case(args, args.case) else 1)


if __name__ == "__main__":
    main()
