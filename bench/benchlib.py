"""Shared pieces of the benchmarks: statistics, processes, images.

Every figure is a median over repeated runs with its min and max; ratios
are taken against a reference measured in the same run, so a noisy
machine moves both sides alike.

Python 3 standard library only.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import time


class BenchError(Exception):
    """A benchmark could not run (a tool failed or a daemon died)."""


def summary(values):
    """{median, min, max, n} of a list of numbers (None when empty)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "n": len(vals)}


def ratios(num, den):
    """Pairwise num[i] / den[i] (runs of the same repetition)."""
    return [a / b for a, b in zip(num, den) if a is not None and b]


def log(msg):
    print(f"bench: {msg}", flush=True)


def make_image(path, size_mib):
    """A fully written image of random data (holes would make reads
    free), reused when it already has the size."""
    if os.path.exists(path) and os.path.getsize(path) == size_mib << 20:
        return path
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size_mib):
            # Vary each MiB a little; the content itself does not matter.
            f.write(i.to_bytes(8, "little") + chunk[8:])
        f.flush()
        os.fsync(f.fileno())
    return path


def wait_path(path, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with "
                             f"{proc.returncode} before creating {path}")
        if time.monotonic() > deadline:
            raise BenchError(f"{path} did not appear")
        time.sleep(0.02)


class Daemon:
    """One stormigd; its log goes to workdir/NAME.log."""

    def __init__(self, stormigd, workdir, name, args, wait_for=()):
        self.name = name
        self.qmp_path = os.path.join(workdir, name + ".qmp")
        for p in list(wait_for) + [self.qmp_path]:
            if os.path.exists(p):
                os.unlink(p)
        self.log = open(os.path.join(workdir, name + ".log"), "ab")
        argv = [stormigd, "--name", name, "--monitor",
                "unix:" + self.qmp_path, "--log-level", "warn"] + list(args)
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for p in list(wait_for) + [self.qmp_path]:
            wait_path(p, self.proc)
        # Clients connect once the daemon runs, as a VMM would.
        deadline = time.monotonic() + 20
        while self.qmp("query-status")["status"] != "running":
            if time.monotonic() > deadline:
                raise BenchError(f"stormigd {name} does not run")
            time.sleep(0.01)

    @property
    def pid(self):
        return self.proc.pid

    def qmp(self, name, args=None):
        """One QMP command on a fresh connection; its "return"."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.qmp_path)
            f = s.makefile("rwb")
            json.loads(f.readline())
            for cmd in ({"execute": "qmp_capabilities"},
                        {"execute": name, "arguments": args or {}}):
                f.write(json.dumps(cmd).encode() + b"\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "event" not in reply:
                        break
            if "error" in reply:
                raise BenchError(f"QMP {name}: {reply['error']}")
            return reply.get("return")

    def vm_hwm_kib(self):
        """Peak resident memory (VmHWM) in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise BenchError("no VmHWM")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def retried(what, fn, retries):
    """fn() once more when it fails; the failure is kept in retries (the
    results report it) rather than hidden."""
    try:
        return fn()
    except BenchError as e:
        retries.append({"what": what, "error": str(e)[-600:]})
        log(f"  {what} failed, once more: {str(e).splitlines()[-1][:200]}")
        return fn()


def run_json_line(argv, timeout):
    """Runs a tool that prints one JSON object as its last line."""
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({r.returncode}):\n"
                         f"{r.stdout[-1500:]}{r.stderr[-1500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
