"""A private iSCSI target for tests: Debian's tgtd (userspace, with
persistent reservation support) on a loopback portal.

Each Tgtd listens on its own free TCP port and uses its own control port
(the name of its management socket), so several can run side by side and
none touches a system-wide tgtd.  Targets get file-backed LUNs and accept
every initiator.  The libiscsi command line tools (iscsi-inq,
iscsi-readcapacity16, iscsi-ls) check a target from the host.

Python 3 standard library only.
"""

import os
import random
import shutil
import socket
import subprocess

import guestlib

IPC_DIR = "/var/run/tgtd"  # where tgtd puts socket.<control port>
IQN_PREFIX = "iqn.2024-01.org.stormig.test"


class TgtError(guestlib.GuestError):
    """tgtd or a libiscsi tool failed."""


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Tgtd:
    """One tgtd process.  start() it, add_lun(), stop() it."""

    def __init__(self, workdir, name="tgtd"):
        self.workdir = workdir
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.port = None
        self.control_port = None
        self.targets = {}  # iqn -> tid
        self.owns_socket = False  # never remove another tgtd's socket

    def start(self, attempts=5):
        """Start tgtd; retries on another port if one was taken meanwhile."""
        if not shutil.which("tgtd"):
            raise TgtError("tgtd is not installed (package tgt)")
        for _ in range(attempts):
            # tgtd takes control ports up to 32767.
            if self._try_start(free_port(), random.randint(1024, 32767)):
                return self
        raise TgtError(f"tgtd did not start; see {self.log_path}")

    def _try_start(self, port, control_port):
        self.port = port
        self.control_port = control_port
        # Another tgtd may hold this control port (its lock is the socket
        # name's .lock file): skip rather than fight over it.
        if os.path.exists(self._socket_path()):
            return False
        self.proc = guestlib.spawn(
            ["tgtd", "-f", "-C", str(self.control_port),
             "--iscsi", f"portal=127.0.0.1:{port}"], self.log_path)
        try:
            guestlib.wait_for(self._ready, 15, "tgtd to listen",
                              alive=self._check_alive)
            self.owns_socket = True
            return True
        except guestlib.GuestError:
            self.stop()
            return False

    def _ready(self):
        return (os.path.exists(self._socket_path()) and _port_open(self.port)
                and self.tgtadm("--op", "show", "--mode", "target",
                                check=False).returncode == 0)

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise TgtError(f"tgtd exited with {self.proc.returncode}")

    def _socket_path(self):
        return os.path.join(IPC_DIR, f"socket.{self.control_port}")

    def tgtadm(self, *args, check=True):
        """Run tgtadm against this tgtd; returns the CompletedProcess."""
        argv = ["tgtadm", "-C", str(self.control_port), "--lld", "iscsi"]
        result = subprocess.run(argv + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=30)
        if check and result.returncode != 0:
            raise TgtError(f"tgtadm {' '.join(args)} failed: "
                           f"{result.stdout.decode(errors='replace')}")
        return result

    def add_lun(self, backing_file, target="disk", size=None):
        """Export backing_file as LUN 1 of a new target; returns its URL.

        The file is created (sparse) with size bytes if size is given.
        The URL has the form iscsi://127.0.0.1:PORT/IQN/1.
        """
        if size is not None:
            guestlib.make_disk(backing_file, size)
        iqn = f"{IQN_PREFIX}:{self.name}-{target}"
        tid = len(self.targets) + 1
        self.tgtadm("--op", "new", "--mode", "target", "--tid", str(tid),
                    "-T", iqn)
        self.targets[iqn] = tid
        self.tgtadm("--op", "new", "--mode", "logicalunit", "--tid", str(tid),
                    "--lun", "1", "-b", backing_file)
        self.tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid),
                    "-I", "ALL")
        return self.url(iqn)

    def url(self, iqn, lun=1):
        return f"iscsi://127.0.0.1:{self.port}/{iqn}/{lun}"

    def stop(self):
        """Stop tgtd and remove its management socket files."""
        if self.proc is None:
            return
        guestlib.kill_process(self.proc, grace=5)
        self.proc = None
        # tgtd leaves its socket and lock file behind when it exits.
        for suffix in ("", ".lock"):
            if self.owns_socket:
                try:
                    os.unlink(self._socket_path() + suffix)
                except FileNotFoundError:
                    pass
        self.owns_socket = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- libiscsi tools ----------------------------------------------------------

def _iscsi_tool(tool, *args, timeout=30):
    if not shutil.which(tool):
        raise TgtError(f"{tool} is not installed (package libiscsi-bin)")
    result = subprocess.run([tool] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=timeout)
    text = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        raise TgtError(f"{tool} {' '.join(args)} failed "
                       f"({result.returncode}):\n{text}")
    return text


def _key_values(text):
    """'Key:value' lines as a dict (the format of the libiscsi tools)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key not in fields:
            fields[key.strip()] = value.strip()
    return fields


def iscsi_inquiry(url):
    """Standard INQUIRY via iscsi-inq: dict with Vendor, Product, ..."""
    return _key_values(_iscsi_tool("iscsi-inq", url))


def iscsi_capacity(url):
    """READ CAPACITY(16) via iscsi-readcapacity16: (blocks, block size)."""
    fields = _key_values(_iscsi_tool("iscsi-readcapacity16", url))
    try:
        last_lba = int(fields["RETURNED LOGICAL BLOCK ADDRESS"])
        block_size = int(fields["LOGICAL BLOCK LENGTH IN BYTES"])
    except (KeyError, ValueError):
        raise TgtError(f"unexpected iscsi-readcapacity16 output: {fields}")
    return last_lba + 1, block_size


def iscsi_targets(portal_url):
    """Target names a portal reports (iscsi-ls iscsi://HOST:PORT)."""
    text = _iscsi_tool("iscsi-ls", portal_url)
    return [line.split("Target:", 1)[1].split()[0]
            for line in text.splitlines() if line.startswith("Target:")]
