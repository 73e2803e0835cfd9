"""Harness for tests that boot a real QEMU guest (TCG only).

A Guest is one QEMU process: its serial console (a root shell, see
scripts/build-guest.sh) and its QMP monitor are unix sockets the harness
connects to.  Guest.run() executes a shell command in the guest and returns
(output, exit status).  migrate() moves a running guest to a destination
QEMU started with incoming=...; afterwards the test talks to the destination.

Every process started here is its own process group and is killed at exit,
whatever way the test ends.

Python 3 standard library only.
"""

import argparse
import atexit
import base64
import ctypes
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import guestmem

PROMPT = b"stormig-guest# "
SKIP = 77  # meson's exit code for a skipped test

# The QEMU every guest of this run uses: a qemu-system-x86_64 binary or a
# wrapper that runs one (setup_test's --qemu, or STORMIG_QEMU).
QEMU = os.environ.get("STORMIG_QEMU") or "qemu-system-x86_64"

# Command markers must never repeat in a console stream, also not across a
# migration (the destination continues the source's shell).
_tags = itertools.count(1)


class GuestError(Exception):
    """A guest, QEMU or the harness itself misbehaved."""


class GuestTimeout(GuestError):
    """Something did not happen within its time limit."""


class QmpError(GuestError):
    """QEMU answered a QMP command with an error."""


# --- process bookkeeping -----------------------------------------------------

_live = []  # subprocess.Popen objects still to be reaped
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child before exec: even a SIGKILLed test (where atexit
    # cannot run) takes its QEMU and tgtd processes with it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, log_path, **kwargs):
    """Start argv in its own process group, output to log_path."""
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=_die_with_parent, **kwargs)
    finally:
        log.close()
    _live.append(proc)
    return proc


def kill_process(proc, grace=0.0):
    """SIGTERM (if grace > 0) then SIGKILL the process group of proc."""
    if proc.poll() is None and grace > 0:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    else:
        # The leader is gone; children left in its group must go too.
        _signal_group(proc, signal.SIGKILL)
    if proc in _live:
        _live.remove(proc)


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_all():
    for proc in list(_live):
        kill_process(proc)


def _exit_on_signal(signum, frame):
    # meson sends SIGTERM on timeout; exit through atexit so nothing leaks.
    sys.exit(128 + signum)


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, _exit_on_signal)
signal.signal(signal.SIGHUP, _exit_on_signal)


def wait_for(predicate, timeout, what, interval=0.05, alive=None):
    """Poll predicate() until true; alive() (if given) may raise early."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if alive:
            alive()
        if time.monotonic() >= deadline:
            raise GuestTimeout(f"timed out after {timeout:.0f}s waiting for "
                               f"{what}")
        time.sleep(interval)


def connect_unix(path, timeout, alive=None):
    """Connect to a unix socket a starting process is about to listen on."""
    def attempt():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return None
    return wait_for(attempt, timeout, f"socket {path}", alive=alive)


# --- QMP ---------------------------------------------------------------------

class Qmp:
    """Minimal synchronous QMP client; events are kept in self.events."""

    def __init__(self, path, timeout=30, alive=None):
        self.sock = connect_unix(path, timeout, alive)
        self.buf = b""
        self.events = []
        self.ids = itertools.count(1)
        greeting = self._read_message(timeout)
        if "QMP" not in greeting:
            raise GuestError(f"unexpected QMP greeting {greeting}")
        self.command("qmp_capabilities")

    def _read_message(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestTimeout(f"QMP: no answer within {timeout}s")
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                data = self.sock.recv(65536)
                if not data:
                    raise GuestError("QMP: connection closed by QEMU")
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, args=None, timeout=30):
        """Execute a command; return its "return" value or raise QmpError.

        args is the dict of QMP arguments (QMP spells names with dashes).
        """
        cmd_id = next(self.ids)
        msg = {"execute": name, "id": cmd_id}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read_message(timeout)
            if "event" in reply:
                self.events.append(reply)
            elif reply.get("id") == cmd_id:
                if "error" in reply:
                    raise QmpError(f"QMP {name}: {reply['error']}")
                return reply.get("return")

    def close(self):
        self.sock.close()


# --- serial console ----------------------------------------------------------

class Console:
    """The guest's serial line: raw bytes in, a log of everything out."""

    # expect() patterns match at most this many bytes (markers and the
    # prompt): each new chunk is searched from this far back only, so a
    # command printing megabytes costs linear, not quadratic, time.
    MAX_MATCH = 256

    def __init__(self, sock, log_path, alive):
        self.sock = sock
        self.buf = b""
        self.before = b""   # what expect() consumed before its match
        self.log = open(log_path, "ab")
        self.alive = alive

    def write(self, data):
        self.sock.sendall(data)

    def _fill(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return
        data = self.sock.recv(65536)
        if not data:
            raise GuestError("serial console closed by QEMU")
        self.log.write(data)
        self.log.flush()
        self.buf += data

    def expect(self, pattern, timeout, what):
        """Wait for regex pattern (bytes, matching at most MAX_MATCH
        bytes); consume through its match, keeping what came before it in
        self.before."""
        regex = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        # Bytes of buf already searched without a match: a match can
        # start no earlier than MAX_MATCH - 1 bytes before their end.
        searched = 0
        while True:
            start = max(0, searched - (self.MAX_MATCH - 1))
            match = regex.search(self.buf, start)
            if match:
                self.before = self.buf[:match.start()]
                self.buf = self.buf[match.end():]
                return match
            searched = len(self.buf)
            left = deadline - time.monotonic()
            if left <= 0:
                tail = self.buf[-600:].decode(errors="replace")
                raise GuestTimeout(f"timed out after {timeout:.0f}s waiting "
                                   f"for {what}; console tail:\n{tail}")
            self.alive()
            self._fill(min(left, 0.5))

    def close(self):
        self.sock.close()
        self.log.close()


# --- the guest ---------------------------------------------------------------

class Guest:
    """One QEMU process running the test guest.

    extra_args are appended to QEMU's command line (devices, drives,
    chardevs).  incoming="unix:PATH" starts a migration destination.
    """

    def __init__(self, image, workdir, name="guest", memory="512M", smp=1,
                 extra_args=(), incoming=None, machine="q35", cmdline="",
                 kernel_debug=None, memory_backend="memfd"):
        self.image = image
        self.name = name
        self.workdir = workdir
        self.sockdir = tempfile.mkdtemp(prefix="stormig-" + name + "-")
        self.serial_path = os.path.join(self.sockdir, "serial")
        self.qmp_path = os.path.join(self.sockdir, "qmp")
        self.log_path = os.path.join(workdir, name + ".qemu.log")
        self.console_log_path = os.path.join(workdir, name + ".console.log")
        self.memory = memory
        # "memfd": guest RAM in a shared memfd (vhost-user back ends map
        # it; vfio-user servers are given its fd).  "ram": anonymous
        # private RAM with no fd, so a vfio-user server reaches it only
        # through DMA_READ / DMA_WRITE messages.
        if memory_backend not in ("memfd", "ram"):
            raise ValueError(f"memory_backend {memory_backend!r}")
        self.memory_backend = memory_backend
        self.smp = smp
        self.extra_args = list(extra_args)
        self.incoming = incoming
        self.machine = machine
        self.cmdline = cmdline
        # Kernel messages on the console show where a boot stops; the
        # environment turns them on for every guest of a test run.
        if kernel_debug is None:
            kernel_debug = os.environ.get("STORMIG_GUEST_KERNEL_DEBUG", "")
        self.kernel_debug = kernel_debug
        self.proc = None
        self.console = None
        self.qmp = None
        self.boot_seconds = None

    def argv(self):
        mem = self.memory
        argv = [
            shutil.which(QEMU) or QEMU,
            "-name", self.name,
            "-machine", self.machine + ",accel=tcg",
            "-smp", str(self.smp), "-m", mem,
            "-object", self.memory_object(mem),
            "-numa", "node,memdev=mem",
            "-nographic", "-nodefaults", "-no-user-config", "-nic", "none",
            "-no-reboot",
            "-kernel", self.image["kernel"], "-initrd", self.image["initrd"],
            "-append", "console=ttyS0 panic=-1 " + self.kernel_args() +
                       self.cmdline,
            # wait=on: QEMU does not run the guest before the harness
            # listens, so no console output is lost.
            "-chardev", f"socket,id=serial0,path={self.serial_path},"
                        "server=on,wait=on",
            "-serial", "chardev:serial0",
            "-chardev", f"socket,id=qmp0,path={self.qmp_path},"
                        "server=on,wait=off",
            "-mon", "chardev=qmp0,mode=control",
        ]
        if self.incoming:
            argv += ["-incoming", self.incoming]
        return argv + self.extra_args

    def memory_object(self, size):
        if self.memory_backend == "ram":
            return f"memory-backend-ram,id=mem,size={size}"
        # vhost-user back ends map guest memory: it must be a shared fd.
        return f"memory-backend-memfd,id=mem,size={size},share=on"

    def kernel_args(self):
        """quiet, or with kernel_debug "1" every kernel message (and with
        "initcall" each initcall too) on the console."""
        if not self.kernel_debug:
            return "quiet "
        args = "loglevel=7 "
        if self.kernel_debug == "initcall":
            args += "initcall_debug "
        return args

    def start(self):
        """Start QEMU and connect console and QMP."""
        self.started = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write((" ".join(self.argv()) + "\n").encode())
        self.proc = spawn(self.argv(), self.log_path)
        sock = connect_unix(self.serial_path, 30, self.check_alive)
        self.console = Console(sock, self.console_log_path, self.check_alive)
        self.qmp = Qmp(self.qmp_path, 30, self.check_alive)
        return self

    def check_alive(self):
        if self.proc.poll() is not None:
            raise GuestError(f"{self.name}: QEMU exited with status "
                             f"{self.proc.returncode}:\n"
                             f"{self.qemu_log_tail()}")

    def qemu_log_tail(self, size=2000):
        try:
            with open(self.log_path, "rb") as log:
                return log.read()[-size:].decode(errors="replace")
        except OSError:
            return ""

    def wait_boot(self, timeout=90):
        """Wait for the shell prompt; returns seconds since start()."""
        self.console.expect(re.escape(PROMPT), timeout, "the guest prompt")
        self.boot_seconds = time.monotonic() - self.started
        # The shell is interactive: one round trip proves it takes commands.
        self.run("true", timeout=30)
        return self.boot_seconds

    def run(self, command, timeout=60):
        """Run a shell command in the guest: (output, exit status).

        The command travels base64-encoded, so any quoting is safe, and is
        evaluated in the guest's login shell (state such as cd or background
        jobs persists).  Output is stdout+stderr with CR LF turned into LF.
        """
        tag = f"{os.getpid()}-{next(_tags)}"
        encoded = base64.b64encode(command.encode()).decode()
        # Busybox line editing takes about 1 KiB per line: longer commands
        # are assembled in a file first.
        if len(encoded) > 700:
            self._send_line(": >/tmp/.harness-cmd")
            for i in range(0, len(encoded), 700):
                chunk = encoded[i:i + 700]
                self._send_line(f"echo {chunk} >>/tmp/.harness-cmd")
            source = "base64 -d /tmp/.harness-cmd"
        else:
            source = f"echo {encoded} | base64 -d"
        # Markers are written with printf escapes: the echoed command line
        # holds a backslash sequence, only real output holds the 0x1e byte.
        self._send_line(f"printf '\\036B{tag}\\036\\n'; eval \"$({source})\"; "
                        f"printf '\\036E{tag}:%d\\036\\n' $?")
        what = f"`{command}` to finish"
        self.console.expect(b"\x1eB" + tag.encode() + b"\x1e\r?\n", timeout,
                            what)
        match = self.console.expect(
            b"\x1eE" + tag.encode() + b":([0-9]{1,3})\x1e", timeout, what)
        output = self.console.before.replace(b"\r\n", b"\n").decode(
            errors="replace")
        return output, int(match.group(1))

    def _send_line(self, line):
        self.console.write(line.encode() + b"\n")

    def check(self, command, timeout=60):
        """run() and raise unless the command exits with status 0."""
        output, status = self.run(command, timeout)
        if status != 0:
            raise GuestError(f"`{command}` exited with {status}:\n{output}")
        return output

    def shutdown(self, timeout=20):
        """Power the guest off cleanly; kill QEMU if that does not work."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self._send_line("sync; poweroff -f")
                self.proc.wait(timeout)
            except (GuestError, OSError, subprocess.TimeoutExpired):
                self.quit()
        self.close()

    def quit(self, timeout=10):
        """Stop QEMU through QMP quit (no guest involvement), else kill."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.qmp.command("quit")
                self.proc.wait(timeout)
            except (GuestError, OSError, subprocess.TimeoutExpired):
                pass
        self.close()

    def close(self):
        """Release everything; kills QEMU if it still runs."""
        if self.proc is not None:
            kill_process(self.proc)
        for part in (self.console, self.qmp):
            if part is not None:
                try:
                    part.close()
                except OSError:
                    pass
        self.console = self.qmp = None
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def status(self):
        return self.qmp.command("query-status")["status"]


# --- migration ---------------------------------------------------------------

def start_destination(src, name="dst", extra_args=None):
    """Start a QEMU like src, waiting for an incoming migration.

    extra_args defaults to src's (same devices); returns the started Guest.
    It starts paused (-S): migrate() compares its memory with the source's
    before letting it run.
    """
    args = list(src.extra_args if extra_args is None else extra_args)
    if "-S" not in args:
        args.append("-S")
    dst = Guest(src.image, src.workdir, name=name, memory=src.memory,
                smp=src.smp, machine=src.machine, cmdline=src.cmdline,
                kernel_debug=src.kernel_debug, extra_args=args)
    # Next to its console and QMP sockets: removed with them by close().
    dst.incoming = "unix:" + os.path.join(dst.sockdir, "migrate")
    dst.start()
    status = dst.status()
    if status != "inmigrate":
        raise GuestError(f"destination is {status}, not inmigrate")
    return dst


def migrate(src, dst, timeout=120, max_bandwidth=1 << 30,
            downtime_ms=300, written_pages=None):
    """Live-migrate src into dst and follow the guest there.

    Returns the final query-migrate answer, plus "pages-compared" and
    "qemu-lost-pages" (guestmem.restore_lost_pages).  On success src is
    stopped and closed, and dst is running with its own console attached;
    on failure both are left as they are and GuestError is raised.

    written_pages: called once QEMU's migration completed and before dst
    runs; returns the [gpa, pages] ranges device back ends wrote while
    logging, which must not differ (None: every difference is QEMU's).
    """
    # The default 32 MiB/s cap would make the first pass take many seconds.
    src.qmp.command("migrate-set-parameters",
                    {"max-bandwidth": max_bandwidth,
                     "downtime-limit": downtime_ms})
    src.qmp.command("migrate", {"uri": dst.incoming})
    deadline = time.monotonic() + timeout
    while True:
        info = src.qmp.command("query-migrate")
        state = info.get("status")
        if state == "completed":
            break
        if state in ("failed", "cancelled"):
            raise GuestError(f"migration {state}: {info.get('error-desc')}")
        if time.monotonic() >= deadline:
            raise GuestTimeout(f"migration still {state} after {timeout}s")
        src.check_alive()
        dst.check_alive()
        time.sleep(0.1)
    written = written_pages() if written_pages else []
    info["pages-compared"], info["qemu-lost-pages"] = \
        check_and_restore_memory(src, dst, written)
    dst.qmp.command("cont")
    wait_for(lambda: dst.status() == "running", 30,
             "the destination to run", alive=dst.check_alive)
    src.quit()
    dst.boot_seconds = src.boot_seconds
    return info


def check_and_restore_memory(src, dst, written):
    """Both QEMUs stopped: compare their guest memory (guestmem.py).
    Returns (pages compared, pages QEMU lost and the harness restored).
    Only QEMU 7.2's losses are restored (qemu_loses_pages()); on any
    other QEMU a differing page fails the migration."""
    status = dst.status()
    if status == "running":
        raise GuestError("the destination runs before its memory was "
                         "compared; start it with -S")
    try:
        pages, lost = guestmem.restore_lost_pages(
            src.proc.pid, dst.proc.pid, written,
            restore=qemu_loses_pages())
    except (guestmem.MissedDirtyLog, guestmem.PagesDiffer) as e:
        raise GuestError(f"QEMU {'.'.join(map(str, qemu_version()))}: {e}")
    except (OSError, RuntimeError) as e:
        raise GuestError(f"cannot compare guest memory: {e}")
    if lost:
        print(guestmem.lost_pages_line(lost), flush=True)
    return pages, lost


# --- test scaffolding --------------------------------------------------------

_qemu_version = {}


def qemu_version():
    """(major, minor) of the QEMU this run uses, from its --version."""
    if QEMU not in _qemu_version:
        out = subprocess.run([shutil.which(QEMU) or QEMU, "--version"],
                             stdout=subprocess.PIPE, check=True).stdout
        m = re.search(rb"version (\d+)\.(\d+)", out)
        if not m:
            raise GuestError(f"cannot read the version of {QEMU}: {out!r}")
        _qemu_version[QEMU] = (int(m.group(1)), int(m.group(2)))
    return _qemu_version[QEMU]


def qemu_loses_pages():
    """Whether this run's QEMU is 7.x, whose TCG loses pages the guest's
    vCPUs write during migration (README.md, "Known QEMU 7.2 defect"):
    only then are differing pages restored instead of failing the test.
    QEMU 11.1 lost none in our measurements; versions in between were
    never tried here, so they get the strict check too."""
    return qemu_version() < (8, 0)


def build_image(script, outdir):
    """Run scripts/build-guest.sh; returns {kernel, initrd, build_seconds}."""
    started = time.monotonic()
    result = subprocess.run(["sh", script, outdir], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise GuestError("guest image build failed:\n" +
                         result.stdout.decode(errors="replace"))
    return {"kernel": os.path.join(outdir, "vmlinuz"),
            "initrd": os.path.join(outdir, "initramfs.cpio.gz"),
            "build_seconds": time.monotonic() - started}


def add_qemu_args(parser):
    """The options that choose the QEMU (see select_qemu)."""
    parser.add_argument("--qemu", default=None,
                        help="qemu-system-x86_64 (or a wrapper) to run")
    parser.add_argument("--vmm-root-script", default=None,
                        help="script building the root --qemu runs from "
                             "(scripts/build-vmm-root.sh), run first")


def select_qemu(args):
    """Make args.qemu the QEMU of this run (building its root first if
    --vmm-root-script is given) and print its version.  Exits with the
    skip status when there is no such QEMU."""
    global QEMU
    if args.qemu:
        QEMU = args.qemu
    if args.vmm_root_script:
        started = time.monotonic()
        result = subprocess.run(["sh", args.vmm_root_script],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise SystemExit("VMM root build failed:\n" +
                             result.stdout.decode(errors="replace"))
        print(f"VMM root ready in {time.monotonic() - started:.1f}s")
    if not shutil.which(QEMU):
        print(f"SKIP: {QEMU} is not installed")
        sys.exit(SKIP)
    print(f"QEMU {'.'.join(map(str, qemu_version()))} ({QEMU})", flush=True)


def setup_test(description):
    """Parse the arguments meson passes, build the image, make a workdir.

    Returns (args, image, workdir).  Exits with the skip status when the
    host cannot run guests at all.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--build-script", required=True)
    parser.add_argument("--image-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    add_qemu_args(parser)
    args = parser.parse_args()
    select_qemu(args)
    image = build_image(args.build_script, args.image_dir)
    print(f"guest image ready in {image['build_seconds']:.1f}s")
    os.makedirs(args.work_dir, exist_ok=True)
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    workdir = os.path.join(args.work_dir, name)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    return args, image, workdir


def make_disk(path, size):
    """A sparse raw image of size bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def run_test(body):
    """Run body(); print a clear failure and exit non-zero on exceptions."""
    started = time.monotonic()
    try:
        body()
    except GuestError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"test time {time.monotonic() - started:.1f}s")
