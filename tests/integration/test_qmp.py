"""The daemon's monitor: greeting, errors, run state commands and events,
and survival of garbage input."""

import json
import socket
import time

from qmp import QMP, QMPError, check, run_tests, wait_for


def start(env):
    img = env.image()
    return env.daemon("a", [
        "--blockdev", f"driver=file,node-name=d0,filename={img}",
        "--device", "pattern-writer,id=pw0,drive=d0,interval=2"])


def expect_qmp_error(d, cls, name, **args):
    try:
        d.cmd(name, **args)
    except QMPError as e:
        check(e.cls == cls, f"{name}: class {e.cls}, want {cls}")
        return e.desc
    raise AssertionError(f"{name} {args} succeeded")


def test_basics(env):
    d = start(env)
    check("version" in d.qmp.greeting["QMP"], "greeting has a version")
    st = d.cmd("query-status")
    check(st == {"status": "running", "running": True}, st)
    blocks = d.cmd("query-block")
    check(len(blocks) == 1 and blocks[0]["node-name"] == "d0" and
          blocks[0]["owned"] and not blocks[0]["read-only"] and
          blocks[0]["size"] == 4 * 1024 * 1024, blocks)
    devs = d.cmd("query-devices")
    check(devs[0]["id"] == "pw0" and devs[0]["type"] == "pattern-writer",
          devs)
    check(d.cmd("query-migrate") == {"status": "none"}, "no migration yet")
    expect_qmp_error(d, "CommandNotFound", "no-such-command")
    expect_qmp_error(d, "GenericError", "migrate")
    expect_qmp_error(d, "GenericError", "migrate", uri="ftp:x")
    expect_qmp_error(d, "GenericError", "query-status", extra=1)
    # null is a type error, not "absent" (vmm-stop: null once meant false).
    desc = expect_qmp_error(d, "GenericError", "migrate",
                            uri="unix:" + env.path("nobody-listens"),
                            **{"vmm-stop": None})
    check("'vmm-stop', expected: boolean" in desc, desc)
    check(d.cmd("query-migrate") == {"status": "none"},
          "a refused migrate command starts nothing")
    desc = expect_qmp_error(d, "GenericError", "migrate-incoming",
                            uri="unix:" + env.path("x"))
    check("incoming" in desc, desc)
    desc = expect_qmp_error(d, "GenericError", "migrate",
                            uri="unix:" + env.path("nobody-listens"))
    check(d.cmd("query-migrate")["status"] == "failed", "refused connect")
    check(d.status() == "running", "a refused migration keeps running")


def test_stop_cont(env):
    d = start(env)
    wait_for(lambda: d.device("pw0")["writes"] > 5, 5, "writes")
    d.cmd("stop")
    d.qmp.wait_event("STOP")
    check(d.status() == "paused", "stopped")
    w = d.device("pw0")["writes"]
    time.sleep(0.2)
    check(d.device("pw0")["writes"] == w, "no writes while paused")
    d.cmd("cont")
    d.qmp.wait_event("RESUME")
    wait_for(lambda: d.device("pw0")["writes"] > w, 5, "writes resume")
    check(d.status() == "running", "running again")


def test_garbage(env):
    d = start(env)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.sock_path)
    s.sendall(b"\x00\xff{{{]]]\"unterminated\n" * 100 + b"}" * 5000)
    s.close()
    raw = QMP(d.sock_path)
    raw.send_raw(b'{"execute": 42}\n[1,2]\n"str"\n{"execute":"quit"x}\n')
    for _ in range(4):
        check("error" in raw.read_reply(), "garbage gets an error")
    check(d.status() == "running", "daemon survives garbage")
    raw.close()
    c = QMP(d.sock_path)
    check(c.cmd("query-status")["running"], "new clients still served")
    c.cmd("quit")
    check(d.proc.wait(10) == 0, "quit exits cleanly")


def read_line(sock):
    """One CRLF-terminated JSON message, or None at EOF."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            return None
        buf += chunk
    return json.loads(buf)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def test_idle_clients(env):
    """Clients that connect and never negotiate cannot lock the operator
    out: one over the limit is told why, and idle ones are dropped after
    negotiation-timeout with a message."""
    img = env.image()
    d = env.daemon("a", ["--blockdev",
                         f"driver=file,node-name=d0,filename={img}"],
                   monitor_opts=",negotiation-timeout=3")
    idle = []
    for _ in range(63):                 # d.qmp holds the 64th slot
        s = connect(d.sock_path)
        check("QMP" in read_line(s), "an idle client gets the greeting")
        idle.append(s)
    start = time.monotonic()
    over = connect(d.sock_path)
    msg = read_line(over)
    check(msg and "error" in msg and
          "too many monitor clients" in msg["error"]["desc"] and
          "negotiation-timeout" in msg["error"]["desc"], msg)
    check(read_line(over) is None, "the client over the limit is closed")
    over.close()
    check(d.status() == "running", "the negotiated client is served")
    for s in idle:
        msg = read_line(s)
        check(msg and "error" in msg and
              "qmp_capabilities" in msg["error"]["desc"] and
              "negotiation-timeout" in msg["error"]["desc"], msg)
        check(read_line(s) is None, "an idle client is closed")
        s.close()
    waited = time.monotonic() - start
    check(2.0 < waited < 8.0, f"idle clients dropped after {waited:.1f} s")
    late = QMP(d.sock_path)
    check(late.cmd("query-status")["status"] == "running",
          "a new client gets in once the idle ones are gone")
    late.close()
    check(d.status() == "running", "a negotiated client is never dropped")


run_tests({
    "basics": test_basics,
    "stop-cont": test_stop_cont,
    "garbage": test_garbage,
    "idle-clients": test_idle_clients,
})
