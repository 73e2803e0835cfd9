"""Live migration between two stormigd processes with a pattern-writer
running: success over unix: and tcp:, cancel, a destination killed
mid-stream, a refused state, and a paused VM migrated twice."""

import socket
import time

from qmp import QMPError, check, run_tests, wait_for

DEV = "pattern-writer,id=pw0,drive=d0,blocks=256,interval=2"


def blockdev(img):
    return f"driver=file,node-name=d0,filename={img}"


def source(env, img, name="src"):
    return env.daemon(name, ["--blockdev", blockdev(img), "--device", DEV])


def destination(env, img, uri, name="dst", extra=(), dev=DEV):
    return env.daemon(name, ["--blockdev", blockdev(img), "--device", dev,
                             "--incoming", uri] + list(extra))


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_writes(d, n=20):
    wait_for(lambda: d.device("pw0")["writes"] >= n, 10, f"{n} writes")


def wait_verified(d):
    """The destination's first start reads every written block back."""
    pw = wait_for(lambda: (lambda p: p if not p["verifying"] else None)(
        d.device("pw0")), 10, "verification")
    check(pw["verify-errors"] == 0, f"verify errors: {pw}")
    check(pw["verified-blocks"] > 0, f"nothing verified: {pw}")
    return pw


def check_writes_continue(d):
    w = d.device("pw0")["writes"]
    wait_for(lambda: d.device("pw0")["writes"] > w + 5, 10,
             f"{d.name} writing")


SRC_PARTS = ("stop", "save", "wait-loaded", "inactivate", "wait-switchover")
DST_PARTS = ("load", "activate", "activate-disks", "activate-devices",
             "start")


def check_downtime_parts(m, d):
    """Each side's downtime-parts: all there and >= 0; the source's
    follow one another from its stop to the end, so they add up to its
    downtime; taking the disks and the devices' hooks are inside the
    destination's activate. (1e-6 ms: rounding of the sums.)"""
    sp, dp = m.get("downtime-parts", {}), d.get("downtime-parts", {})
    check(sorted(sp) == sorted(SRC_PARTS) and
          sorted(dp) == sorted(DST_PARTS) and
          min(list(sp.values()) + list(dp.values())) >= 0 and
          abs(sum(sp.values()) - m["downtime"]) < 1e-6 and
          dp["activate-disks"] + dp["activate-devices"] <=
          dp["activate"] + 1e-6, f"downtime parts: source {m}, dest {d}")


def check_migrated(src, dst):
    m = src.wait_migration()
    check(m["status"] == "completed", f"source: {m}")
    check(m["downtime"] > 0 and m["device-state-size"] > 1024 and
          m["transferred"] > m["device-state-size"] and "setup-time" in m, m)
    d = dst.wait_migration()
    check(d["status"] == "completed", "destination")
    check_downtime_parts(m, d)
    check(src.status() == "postmigrate", src.status())
    check(dst.status() == "running", dst.status())
    check(src.owned() == [] and dst.owned() == ["d0"],
          f"exactly one owner: src {src.owned()} dst {dst.owned()}")
    src.qmp.wait_event("STOP")
    src.qmp.wait_event("MIGRATION",
                       pred=lambda e: e["data"]["status"] == "completed")
    dst.qmp.wait_event("RESUME")
    wait_verified(dst)
    check_writes_continue(dst)
    w = src.device("pw0")["writes"]
    time.sleep(0.1)
    check(src.device("pw0")["writes"] == w, "the source no longer writes")


def migrate_ok(env, uri):
    img = env.image()
    src = source(env, img)
    dst = destination(env, img, uri)
    wait_writes(src)
    src.cmd("migrate", uri=uri)
    check_migrated(src, dst)
    return src, dst


def test_unix(env):
    src, dst = migrate_ok(env, "unix:" + env.path("mig.sock"))
    # The source gets its disks back only once the destination is gone.
    try:
        src.cmd("cont")
        raise AssertionError("cont took disks the destination owns")
    except QMPError as e:
        check("dst" in e.desc or "pid" in e.desc or "lock" in e.desc, e.desc)
    check(src.owned() == [], "still one owner")
    dst.kill()
    src.cmd("cont")
    check(src.status() == "running" and src.owned() == ["d0"], "cont")
    check_writes_continue(src)


def test_tcp_deferred(env):
    """--incoming defer, then migrate-incoming over QMP, over tcp."""
    img = env.image()
    uri = f"tcp:127.0.0.1:{free_tcp_port()}"
    src = source(env, img)
    dst = destination(env, img, "defer")
    check(dst.status() == "inmigrate" and dst.owned() == [], "waiting")
    dst.cmd("migrate-incoming", uri=uri)
    try:
        dst.cmd("migrate-incoming", uri=uri)
        raise AssertionError("a second migrate-incoming was accepted")
    except QMPError as e:
        check("in progress" in e.desc, e.desc)
    wait_writes(src)
    src.cmd("migrate", uri=uri)
    check_migrated(src, dst)


def recovered(src, status, word):
    m = src.wait_migration()
    check(m["status"] == status, f"{m}")
    check(word in m.get("error-desc", ""), f"error-desc: {m}")
    check(src.status() == "running", src.status())
    check(src.owned() == ["d0"], "the source owns its disk again")
    check_writes_continue(src)


def slow_destination(env, img, uri, name="dst"):
    return destination(env, img, uri, name,
                       ["--debug-load-delay-ms", "20000"])


def test_cancel(env):
    img = env.image()
    uri = "unix:" + env.path("mig.sock")
    src = source(env, img)
    dst = slow_destination(env, img, uri)
    wait_writes(src)
    src.cmd("migrate", uri=uri)
    wait_for(lambda: src.cmd("query-migrate")["status"] == "device", 10,
             "device state in transit")
    check(src.status() == "finish-migrate", "stopped for the handover")
    src.cmd("migrate_cancel")
    recovered(src, "cancelled", "cancel")
    m = dst.wait_migration(("failed",))
    check(dst.status() == "inmigrate" and dst.owned() == [], f"dst {m}")


def test_kill_destination_then_retry(env):
    img = env.image()
    uri = "unix:" + env.path("mig.sock")
    src = source(env, img)
    dst = slow_destination(env, img, uri)
    wait_writes(src)
    src.cmd("migrate", uri=uri)
    wait_for(lambda: src.cmd("query-migrate")["status"] == "device", 10,
             "device state in transit")
    dst.kill()
    recovered(src, "failed", "closed")
    # A new destination: the same source migrates successfully.
    uri2 = "unix:" + env.path("mig2.sock")
    dst2 = destination(env, img, uri2, "dst2")
    src.cmd("migrate", uri=uri2)
    check_migrated(src, dst2)


def test_state_refused(env):
    img = env.image()
    uri = "unix:" + env.path("mig.sock")
    src = source(env, img)
    dst = destination(env, img, uri,
                      dev="pattern-writer,id=pw0,drive=d0,blocks=128")
    wait_writes(src)
    src.cmd("migrate", uri=uri)
    recovered(src, "failed", "blocks")
    m = dst.wait_migration(("failed",))
    check("blocks" in m["error-desc"], m)
    check(dst.status() == "inmigrate" and dst.owned() == [], "dst unchanged")
    check(dst.device("pw0")["generation"] == 0, "dst state untouched")


def test_paused_twice(env):
    """Seed 004: a VM that stays paused migrates A -> B -> C; B never ran,
    so it never takes nor gives up the disks a second time."""
    img = env.image()
    a = source(env, img, "a")
    wait_writes(a)
    a.cmd("stop")
    gen = a.device("pw0")["generation"]
    b = destination(env, img, "unix:" + env.path("b.sock"), "b")
    a.cmd("migrate", uri="unix:" + env.path("b.sock"))
    check(a.wait_migration()["status"] == "completed", "a -> b")
    check(b.wait_migration()["status"] == "completed", "b incoming")
    check(b.status() == "paused" and b.owned() == [] and a.owned() == [],
          "a paused VM does not take its disks at switchover")
    c = destination(env, img, "unix:" + env.path("c.sock"), "c")
    b.cmd("migrate", uri="unix:" + env.path("c.sock"))
    check(b.wait_migration()["status"] == "completed", "b -> c")
    check(c.wait_migration()["status"] == "completed", "c incoming")
    check(b.status() == "postmigrate" and c.status() == "paused", "states")
    check("disks already inactive" in b.log_text(),
          "b did not inactivate a second time")
    check(b.log_text().count("disks inactivated") == 0, "b never inactivated")
    check(c.device("pw0")["generation"] == gen, "state carried twice")
    c.cmd("cont")
    check(c.owned() == ["d0"] and c.status() == "running", "cont takes disks")
    wait_verified(c)
    check_writes_continue(c)


run_tests({
    "unix": test_unix,
    "tcp-deferred": test_tcp_deferred,
    "cancel": test_cancel,
    "kill-destination-retry": test_kill_destination_then_retry,
    "state-refused": test_state_refused,
    "paused-twice": test_paused_twice,
})
