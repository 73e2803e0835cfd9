"""stormigd --config FILE (the options of the command line, one per line)
and the systemd readiness notification (sd_notify over NOTIFY_SOCKET)."""

import os
import signal
import socket
import subprocess

from qmp import QMP, check, run_tests


def run(env, *args):
    p = subprocess.run([env.stormigd] + list(args), capture_output=True,
                       text=True, timeout=10)
    return p.returncode, p.stdout + p.stderr


def write(env, name, text):
    path = env.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def options(env):
    """One daemon's options: a disk, a vhost-user SCSI controller with it,
    a second disk for a pattern writer."""
    img0, img1 = env.image("d0.img"), env.image("d1.img")
    return [
        ("blockdev", f"driver=file,node-name=d0,filename={img0}"),
        ("blockdev", f"driver=file,node-name=d1,filename={img1},"
                     "read-only=on"),
        ("device", "vhost-user-scsi,id=scsi0,socket="
                   + env.path("scsi0.sock") + ",num-queues=2"),
        ("device", "scsi-hd,id=hd0,drive=d0,bus=scsi0,lun=3,serial=HD0"),
        ("log-level", "debug"),
    ]


def snapshot(d):
    return {c: d.cmd(c) for c in ("query-devices", "query-block",
                                  "query-status")}


def test_same_as_command_line(env):
    opts = options(env)
    argv = [a for name, val in opts for a in (f"--{name}", val)]
    a = env.daemon("cli", argv)
    from_cli = snapshot(a)
    check(a.stop() == 0, "clean exit")
    # Every spelling a config file allows: --opt value, opt value,
    # opt=value, blank lines, comments, indentation, trailing blanks.
    styles = ["--{} {}", "{} {}", "{}={}", "  --{}\t{}  ", "{}   {}"]
    lines = ["# stormigd options for vm1", ""]
    for i, (name, val) in enumerate(opts):
        lines.append(styles[i % len(styles)].format(name, val))
        lines.append("   # a comment, then a blank line")
        lines.append("")
    conf = write(env, "vm1.conf", "\n".join(lines))
    b = env.daemon("conf", ["--config", conf])
    from_conf = snapshot(b)
    check(from_conf == from_cli,
          f"--config differs from the command line:\n{from_conf}\n"
          f"vs\n{from_cli}")
    check(b.stop() == 0, "clean exit")
    # Options after --config still apply on top of it (last one wins).
    c = env.daemon("conf2", ["--config", conf, "--log-level", "error"])
    check(snapshot(c) == from_cli, "command line after --config")


def expect_refused(env, text, lineno, *words):
    conf = write(env, "bad.conf", text)
    rc, out = run(env, "--config", conf)
    check(rc == 1, f"{text!r}: exit status {rc}, want 1\n{out}")
    where = f"{conf}:{lineno}:"
    check(where in out, f"{text!r}: message lacks '{where}':\n{out}")
    for w in words:
        check(w in out, f"{text!r}: message lacks '{w}':\n{out}")


def test_bad_lines(env):
    img = env.image()
    bd = f"blockdev driver=file,node-name=d0,filename={img}\n"
    expect_refused(env, "# ok\n\nbogus value\n", 3, "unknown option",
                   "bogus")
    expect_refused(env, "log-level\n", 1, "needs a value", "log-level")
    expect_refused(env, "\n--log-level=\n", 2, "needs a value")
    expect_refused(env, "help x\n", 1, "unknown option", "help")
    expect_refused(env, "version\n", 1, "unknown option", "version")
    expect_refused(env, "config other.conf\n", 1, "unknown option",
                   "config")
    expect_refused(env, "# a\nlog-level loud\n", 2, "log level", "loud")
    expect_refused(env, "compat-version 7\n", 1, "X.Y")
    # Errors found when the devices are created still name the line.
    expect_refused(env, bd + "\n#\ndevice pattern-writer,id=pw0,"
                   "drive=d0,speed=9\n", 4, "speed")
    expect_refused(env, bd.replace("d0,", "d0,colour=red,"), 1, "colour")
    expect_refused(env, "log-level info\0debug\n", 1, "NUL")
    rc, out = run(env, "--config", env.path("missing.conf"))
    check(rc == 1 and "missing.conf" in out and "No such file" in out, out)


def listening(path):
    """True when a unix stream socket is listening at path (read from
    /proc/net/unix: flag __SO_ACCEPTCON, state 01), without connecting."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if (len(fields) >= 8 and fields[-1] == path and
                    int(fields[3], 16) & 0x10000 and fields[5] == "01"):
                return True
    return False


def test_notify_ready(env):
    notify_path = env.path("notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    ns.settimeout(15)
    img = env.image()
    mon = env.path("mon.qmp")
    scsi = env.path("scsi0.sock")
    incoming = env.path("mig.sock")
    argv = [env.stormigd, "--name", "notify",
            "--blockdev", f"driver=file,node-name=d0,filename={img}",
            "--device", f"vhost-user-scsi,id=scsi0,socket={scsi}",
            "--device", "scsi-hd,id=hd0,drive=d0,bus=scsi0",
            "--incoming", f"unix:{incoming}", "--monitor", f"unix:{mon}"]
    log = open(env.path("notify.log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, NOTIFY_SOCKET=notify_path))
    try:
        msg = ns.recv(4096).decode()
        # Checked the moment READY=1 arrived: every socket already
        # listens, and the monitor answers.
        for path in (mon, scsi, incoming):
            check(listening(path), f"{path} not listening at READY=1")
        check("READY=1" in msg.split("\n"), f"first message: {msg!r}")
        check("STATUS=inmigrate" in msg.split("\n"), f"status: {msg!r}")
        q = QMP(mon)
        check(q.cmd("query-status")["status"] == "inmigrate", "status")
        q.close()
        proc.send_signal(signal.SIGTERM)
        msg = ns.recv(4096).decode()
        check("STOPPING=1" in msg.split("\n"), f"at SIGTERM: {msg!r}")
        check(proc.wait(10) == 0, "clean exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        ns.close()
        with open(env.path("notify.log"), "rb") as f:
            text = f.read().decode(errors="replace")
        if "Sanitizer" in text or "runtime error:" in text:
            print(text)
            raise AssertionError("sanitizer report")


if __name__ == "__main__":
    run_tests({
        "same-as-cmdline": test_same_as_command_line,
        "bad-lines": test_bad_lines,
        "notify-ready": test_notify_ready,
    })
