"""A small QMP client and a stormigd process wrapper for the integration
tests and the demo (Python 3 standard library only)."""

import argparse
import json
import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
import traceback


class QMPError(Exception):
    def __init__(self, cls, desc):
        super().__init__(f"{cls}: {desc}")
        self.cls = cls
        self.desc = desc


class QMP:
    """One negotiated QMP connection."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.greeting = self._read()
        if "QMP" not in self.greeting:
            raise RuntimeError(f"no QMP greeting: {self.greeting}")
        self.cmd("qmp_capabilities")

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("monitor closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def read_reply(self):
        """Next non-event message; events are kept in self.events."""
        while True:
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd_raw(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        return self.read_reply()

    def cmd(self, name, **args):
        rsp = self.cmd_raw(name, **args)
        if "error" in rsp:
            raise QMPError(rsp["error"]["class"], rsp["error"]["desc"])
        return rsp["return"]

    def wait_event(self, name, timeout=10.0, pred=None):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name and (pred is None or pred(ev)):
                    return self.events.pop(i)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} event")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self.events.append(self._read())
            except socket.timeout:
                pass
            finally:
                self.sock.settimeout(10.0)


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


class Daemon:
    """A stormigd process with its monitor socket in a work directory."""

    def __init__(self, binary, workdir, name, args, monitor=True,
                 monitor_opts=""):
        self.name = name
        self.sock_path = os.path.join(workdir, f"{name}.qmp")
        self.log_path = os.path.join(workdir, f"{name}.log")
        argv = [binary, "--name", name] + list(args)
        if monitor:
            argv += ["--monitor", f"unix:{self.sock_path}{monitor_opts}"]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.qmp = None
        if monitor:
            wait_for(lambda: os.path.exists(self.sock_path) or
                     self.proc.poll() is not None, 10, f"{name} monitor")
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.log_text()}")
            # The socket file appears at bind(), slightly before listen().
            self.qmp = wait_for(self._connect, 10, f"{name} monitor")

    def _connect(self):
        try:
            return QMP(self.sock_path)
        except ConnectionRefusedError:
            return None

    def cmd(self, name, **args):
        return self.qmp.cmd(name, **args)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"{self.name} ignored SIGTERM: killed")
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            if self.qmp:
                self.qmp.close()
            self.log.close()

    def device(self, dev_id):
        for d in self.cmd("query-devices"):
            if d["id"] == dev_id:
                return d
        raise KeyError(dev_id)

    def owned(self):
        return [b["node-name"] for b in self.cmd("query-block") if b["owned"]]

    def status(self):
        return self.cmd("query-status")["status"]

    def wait_migration(self, statuses=("completed", "failed", "cancelled"),
                       timeout=20):
        return wait_for(lambda: (lambda m: m if m["status"] in statuses
                                 else None)(self.cmd("query-migrate")),
                        timeout, f"{self.name} migration to end")


def make_image(path, size=4 * 1024 * 1024):
    with open(path, "wb") as f:
        f.truncate(size)


def workdir(prefix):
    """A short temporary directory (unix socket paths are limited)."""
    return tempfile.mkdtemp(prefix=prefix)


class Env:
    """What a test gets: the binaries, a work directory, and the daemons it
    started (stopped and, on failure, their logs printed at the end)."""

    def __init__(self, stormigd, analyze):
        self.stormigd = stormigd
        self.analyze = analyze
        self.dir = workdir("stormig-it-")
        self.daemons = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def image(self, name="disk.img", size=4 * 1024 * 1024):
        p = self.path(name)
        make_image(p, size)
        return p

    def daemon(self, name, args, monitor=True, monitor_opts=""):
        d = Daemon(self.stormigd, self.dir, name, args, monitor,
                   monitor_opts)
        self.daemons.append(d)
        return d

    def cleanup(self, failed):
        """Stops the daemons; False when one reported a sanitizer error
        (an instrumented build) -- that fails the test too."""
        clean = True
        for d in self.daemons:
            if d.alive():
                d.stop()
            text = d.log_text()
            if "Sanitizer" in text or "runtime error:" in text:
                clean = False
            if failed or not clean:
                print(f"---- log of {d.name} ----")
                print(text)
        shutil.rmtree(self.dir, ignore_errors=True)
        return clean


def run_tests(tests):
    """Command line: --stormigd PATH [--analyze PATH] TEST... (all when
    none). Exits non-zero when a test fails."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--stormigd", required=True)
    ap.add_argument("--analyze")
    ap.add_argument("names", nargs="*")
    opts = ap.parse_args()
    names = opts.names or list(tests)
    failures = 0
    for name in names:
        env = Env(opts.stormigd, opts.analyze)
        start = time.monotonic()
        ok = False
        try:
            tests[name](env)
            ok = True
        except Exception:
            traceback.print_exc()
        finally:
            ok = env.cleanup(not ok) and ok
        print(f"{'ok' if ok else 'FAIL'} {name} "
              f"({time.monotonic() - start:.1f}s)", flush=True)
        failures += not ok
    sys.exit(1 if failures else 0)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
