"""A migration peer that goes silent or is cancelled (channel.h §5): the
destination drops a silent source and accepts the next one; migrate_cancel
works on the destination; a source whose destination goes silent fails the
migration and runs again with its disks, unless the destination took them.
The silent peers are scripted (migpeer.py)."""

import os
import time

import migpeer
from qmp import QMPError, check, run_tests, wait_for

DEV = "pattern-writer,id=pw0,drive=d0,blocks=256,interval=2"
TIMEOUT_MS = 300


def blockdev(img):
    return f"driver=file,node-name=d0,filename={img}"


def source(env, img, name="src"):
    return env.daemon(name, ["--blockdev", blockdev(img), "--device", DEV])


def destination(env, img, uri, name="dst", extra=()):
    return env.daemon(name, ["--blockdev", blockdev(img), "--device", DEV,
                             "--incoming", uri] + list(extra))


def wait_writes(d, n=20):
    wait_for(lambda: d.device("pw0")["writes"] >= n, 10, f"{n} writes")


def check_writes_continue(d):
    w = d.device("pw0")["writes"]
    wait_for(lambda: d.device("pw0")["writes"] > w + 5, 10,
             f"{d.name} writing")


def check_timeout_error(m, phase, peer):
    """query-migrate names the timeout, the phase and what was awaited."""
    desc = m.get("error-desc", "")
    check("peer-timeout" in desc and f"{TIMEOUT_MS} ms" in desc and
          f"phase {phase}" in desc and f"from the {peer}" in desc,
          f"error-desc: {m}")


def check_migrates(src, dst, uri):
    src.cmd("migrate", uri=uri)
    m = src.wait_migration()
    check(m["status"] == "completed", f"source: {m}")
    d = dst.wait_migration()
    check(d["status"] == "completed", f"destination: {d}")
    check(dst.status() == "running" and dst.owned() == ["d0"] and
          src.owned() == [], "the new source's migration took over")


def test_silent_source(env):
    """A source that connects and says nothing, then one that stops after
    HELLO: each is dropped after peer-timeout, and a real source that
    connected meanwhile is served next."""
    img = env.image()
    path = env.path("mig.sock")
    dst = destination(env, img, "unix:" + path,
                      extra=["--peer-timeout", str(TIMEOUT_MS)])
    mute = migpeer.connect_unix(path)
    wait_for(lambda: dst.cmd("query-migrate")["status"] == "setup", 5,
             "dst in setup")
    m = dst.wait_migration(("failed",), timeout=5)
    check_timeout_error(m, "wait-hello", "source")
    check(mute.wait_closed(), "the silent source was disconnected")
    check(dst.status() == "inmigrate" and dst.owned() == [], "dst waits")

    after_hello = migpeer.connect_unix(path)
    after_hello.send_raw(migpeer.hello())
    after_hello.expect(migpeer.HELLO)
    wait_for(lambda: dst.cmd("query-migrate")["status"] == "active", 5,
             "dst active")
    # A second source connects while the first holds the destination.
    src = source(env, img)
    wait_writes(src)
    src.cmd("migrate", uri="unix:" + path)
    # The next source is served at once, so the record of the dropped
    # one is read from the log.
    wait_for(lambda: "phase wait-state" in dst.log_text(), 5,
             "dst drops the source")
    check(f"no DEVICE_STATE or KEEPALIVE from the source within {TIMEOUT_MS}"
          " ms (phase wait-state)" in dst.log_text(), "timeout logged")
    check(after_hello.wait_closed(), "the source was disconnected")
    m = src.wait_migration()
    check(m["status"] == "completed", f"the waiting source migrated: {m}")
    check(dst.wait_migration()["status"] == "completed", "dst completed")
    check(dst.status() == "running" and dst.owned() == ["d0"] and
          src.owned() == [], "one owner")


def test_destination_cancel(env):
    """migrate_cancel on a destination whose source went quiet after
    HELLO: the source is dropped at once, the destination never took the
    disks and accepts a new source."""
    img = env.image()
    path = env.path("mig.sock")
    dst = destination(env, img, "unix:" + path)
    peer = migpeer.connect_unix(path)
    peer.send_raw(migpeer.hello())
    peer.expect(migpeer.HELLO)
    wait_for(lambda: dst.cmd("query-migrate")["status"] == "active", 5,
             "dst active")
    dst.cmd("migrate_cancel")
    m = dst.cmd("query-migrate")
    check(m["status"] == "cancelled" and "cancel" in m.get("error-desc", ""),
          f"dst: {m}")
    check(peer.wait_closed(2), "the source was disconnected")
    check(dst.status() == "inmigrate" and dst.owned() == [], "dst waits")
    src = source(env, img)
    wait_writes(src)
    check_migrates(src, dst, "unix:" + path)


def test_destination_cancel_loading(env):
    """migrate_cancel on a destination that holds a real source's state
    (loading it): the source gets its disks back and runs, the destination
    accepts that source again."""
    img = env.image()
    path = env.path("mig.sock")
    dst = destination(env, img, "unix:" + path,
                      extra=["--debug-load-delay-ms", "1500"])
    src = source(env, img)
    wait_writes(src)
    src.cmd("migrate", uri="unix:" + path)
    wait_for(lambda: dst.cmd("query-migrate")["status"] == "device", 10,
             "dst holds the state")
    dst.cmd("migrate_cancel")
    check(dst.cmd("query-migrate")["status"] == "cancelled", "dst cancelled")
    m = src.wait_migration()
    check(m["status"] == "failed", f"source: {m}")
    check(src.status() == "running" and src.owned() == ["d0"],
          "the source runs with its disk")
    check_writes_continue(src)
    check(dst.status() == "inmigrate" and dst.owned() == [], "dst waits")
    check_migrates(src, dst, "unix:" + path)


def fake_destination(env, src, upto):
    """A destination that answers up to `upto` and then says nothing."""
    path = env.path("fake.sock")
    lst = migpeer.Listener(path)
    src.cmd("migrate", uri="unix:" + path, **{"peer-timeout": TIMEOUT_MS})
    peer = lst.accept()
    peer.expect(migpeer.HELLO)
    if upto == "connect":
        return lst, peer
    peer.send_raw(migpeer.hello())
    if upto == "hello":
        return lst, peer
    peer.expect(migpeer.DEVICE_STATE)
    peer.send(migpeer.STATE_LOADED)
    check(peer.expect(migpeer.SWITCHOVER) == b"\x01", "SWITCHOVER RUN")
    return lst, peer


def source_recovered(src, phase):
    m = src.wait_migration(timeout=5)
    check(m["status"] == "failed", f"source: {m}")
    check_timeout_error(m, phase, "destination")
    check(src.status() == "running", src.status())
    check(src.owned() == ["d0"], "the source owns its disk again")
    check_writes_continue(src)


def test_silent_destination_connect(env):
    """No HELLO back: the source never stopped and fails after the
    timeout."""
    src = source(env, env.image())
    wait_writes(src)
    lst, peer = fake_destination(env, src, "connect")
    source_recovered(src, "wait-hello")
    check(peer.wait_closed(), "the source hung up")


def test_silent_destination_hello(env):
    """HELLO back, then nothing: the source stopped and sent its state; it
    fails after the timeout and runs again."""
    src = source(env, env.image())
    wait_writes(src)
    lst, peer = fake_destination(env, src, "hello")
    source_recovered(src, "wait-loaded")


def test_silent_destination_loaded(env):
    """STATE_LOADED, then nothing after SWITCHOVER: the destination never
    took the disks, so the source takes them back and runs."""
    src = source(env, env.image())
    wait_writes(src)
    lst, peer = fake_destination(env, src, "loaded")
    source_recovered(src, "wait-switchover-done")


def test_silent_destination_holds_disks(env):
    """After SWITCHOVER the destination takes the disk and goes silent:
    the source fails the migration but must not take the disk from it, so
    it stays stopped (both never run); 'cont' works once it is released."""
    img = env.image()
    src = source(env, img)
    wait_writes(src)
    lst, peer = fake_destination(env, src, "loaded")
    fd = migpeer.take_image_lock(img)
    m = src.wait_migration(timeout=5)
    check(m["status"] == "failed", f"source: {m}")
    check_timeout_error(m, "wait-switchover-done", "destination")
    check(src.status() == "paused" and src.owned() == [],
          f"the source stays stopped without the disk: {src.status()}")
    w = src.device("pw0")["writes"]
    time.sleep(0.1)
    check(src.device("pw0")["writes"] == w, "the source does not write")
    try:
        src.cmd("cont")
        raise AssertionError("cont took a disk the destination holds")
    except QMPError as e:
        check("lock" in e.desc, e.desc)
    os.close(fd)
    src.cmd("cont")
    check(src.status() == "running" and src.owned() == ["d0"], "cont")
    check_writes_continue(src)


def vus_daemon(env, img, name, extra=()):
    sock = env.path(f"{name}-scsi.sock")
    return env.daemon(name, [
        "--blockdev", blockdev(img),
        "--device", f"vhost-user-scsi,id=scsi0,socket={sock},num-queues=1",
        "--device", "scsi-hd,id=hd0,drive=d0,bus=scsi0,lun=0,serial=HD0",
    ] + list(extra)), sock


def test_vmm_wait_keepalive(env):
    """vmm-stop: the source waits for its VMM far longer than the
    destination's peer-timeout; its KEEPALIVEs keep the destination
    waiting, and the migration completes once the VMM stops the ring."""
    img = env.image()
    path = env.path("mig.sock")
    src, src_sock = vus_daemon(env, img, "src")
    dst, _ = vus_daemon(env, img, "dst", ["--incoming", "unix:" + path,
                                         "--peer-timeout", str(TIMEOUT_MS)])
    vmm = migpeer.VhostUserFrontEnd(src_sock)
    vmm.start_ring(2)       # request queue 0 (after control and event)
    wait_for(lambda: src.device("scsi0")["queues"][2]["started"], 5,
             "ring started")
    src.cmd("migrate", uri="unix:" + path, **{"vmm-stop": True,
                                             "peer-timeout": TIMEOUT_MS})
    wait_for(lambda: dst.cmd("query-migrate")["status"] == "active", 5,
             "dst active")
    time.sleep(4 * TIMEOUT_MS / 1000)
    m, d = src.cmd("query-migrate"), dst.cmd("query-migrate")
    check(m["status"] == "active" and d["status"] == "active",
          f"still waiting for the VMM: source {m}, destination {d}")
    vmm.stop_ring(2)
    m = src.wait_migration()
    check(m["status"] == "completed" and
          m["vmm-wait"] >= 4 * TIMEOUT_MS, f"source: {m}")
    check(dst.wait_migration()["status"] == "completed", "destination")
    check(dst.status() == "running" and dst.owned() == ["d0"] and
          src.owned() == [], "one owner")
    vmm.close()


def test_peer_timeout_values(env):
    """The default, a per-migration value, and values refused."""
    img = env.image()
    src = source(env, img)
    for bad in (0, -1, 3600001, "1"):
        try:
            src.cmd("migrate", uri="unix:" + env.path("x.sock"),
                    **{"peer-timeout": bad})
            raise AssertionError(f"peer-timeout {bad!r} accepted")
        except QMPError as e:
            check("peer-timeout" in e.desc, e.desc)
    check(src.cmd("query-migrate")["status"] == "none", "nothing started")
    try:
        src.cmd("migrate", uri="unix:" + env.path("x.sock"))
    except QMPError:
        pass
    m = src.cmd("query-migrate")
    check(m["status"] == "failed" and m["peer-timeout"] == 120000,
          f"the default: {m}")
    try:
        src.cmd("migrate", uri="unix:" + env.path("x.sock"),
                **{"peer-timeout": 250})
    except QMPError:
        pass
    m = src.cmd("query-migrate")
    check(m["peer-timeout"] == 250, f"this migration's: {m}")
    dst = env.daemon("dst", ["--blockdev", blockdev(img), "--device", DEV,
                             "--incoming", "defer", "--peer-timeout", "700"])
    dst.cmd("migrate-incoming", uri="unix:" + env.path("in.sock"),
            **{"peer-timeout": 450})
    migpeer.connect_unix(env.path("in.sock"))
    m = wait_for(lambda: (lambda q: q if q["status"] != "none" else None)(
        dst.cmd("query-migrate")), 5, "a source connected")
    check(m["peer-timeout"] == 450, f"migrate-incoming's: {m}")
    for bad in ("0", "x", "3600001"):
        try:
            env.daemon("bad" + bad, ["--peer-timeout", bad])
            raise AssertionError(f"--peer-timeout {bad} accepted")
        except RuntimeError as e:
            check("--peer-timeout" in str(e), str(e))


run_tests({
    "silent-source": test_silent_source,
    "destination-cancel": test_destination_cancel,
    "destination-cancel-loading": test_destination_cancel_loading,
    "silent-destination-connect": test_silent_destination_connect,
    "silent-destination-hello": test_silent_destination_hello,
    "silent-destination-loaded": test_silent_destination_loaded,
    "silent-destination-holds-disks": test_silent_destination_holds_disks,
    "vmm-wait-keepalive": test_vmm_wait_keepalive,
    "values": test_peer_timeout_values,
})
