"""Stopping a vhost-user controller while a request waits on a slow disk
(blockdev x-debug-delay-ms holds every completion): the monitor keeps
answering, the stop finishes once the request completed, and a disk that
stays silent past stop-timeout fails the stop, leaving the VM running."""

import json
import time

import migpeer
from qmp import QMP, check, run_tests, wait_for

DELAY_MS = 2000


def vus_args(env, img, name, stop_timeout=None, delay_ms=DELAY_MS):
    sock = env.path(f"{name}-scsi0.sock")
    vus = f"vhost-user-scsi,id=scsi0,socket={sock},num-queues=1"
    if stop_timeout:
        vus += f",stop-timeout={stop_timeout}"
    return sock, [
        "--blockdev", f"driver=file,node-name=d0,filename={img},"
                      f"x-debug-delay-ms={delay_ms}",
        "--device", vus,
        "--device", "scsi-hd,id=hd0,drive=d0,bus=scsi0,lun=0,serial=HD0"]


def daemon(env, stop_timeout=None, img=None):
    img = img or env.image()
    sock, args = vus_args(env, img, "d", stop_timeout)
    d = env.daemon("d", args)
    vmm = migpeer.VhostUserFrontEnd(sock)
    vmm.setup_ring(2)
    # The first command gets the power-on UNIT ATTENTION.
    vmm.submit_read(0, 8)
    wait_for(lambda: vmm.used_idx() == 1, 10, "the first command")
    vmm.submit_read(0, 8)
    wait_for(lambda: d.device("scsi0")["queues"][2]["inflight"] == 1, 5,
             "the READ in flight")
    return d, vmm


def stop_and_query(d):
    """Sends stop on the main connection without waiting for its answer,
    then times query-status on a second one."""
    other = QMP(d.sock_path)
    d.qmp.send_raw(json.dumps({"execute": "stop"}).encode() + b"\n")
    t0 = time.monotonic()
    status = other.cmd("query-status")["status"]
    ms = (time.monotonic() - t0) * 1000
    other.close()
    check(ms < 100, f"query-status took {ms:.0f} ms during the stop")
    return status


def test_stop_waits_without_blocking(env):
    d, vmm = daemon(env)
    t0 = time.monotonic()
    status = stop_and_query(d)
    check(status == "running", f"still stopping: {status}")
    check(d.qmp.read_reply() == {"return": {}}, "stop answered")
    d.qmp.wait_event("STOP", timeout=10)
    took = time.monotonic() - t0
    check(took > DELAY_MS / 1000 * 0.7,
          f"the stop waited for the request in flight ({took:.2f} s)")
    check(vmm.used_idx() == 2 and vmm.scsi_status() == 0,
          "the READ completed (GOOD) before the stop ended")
    check(d.status() == "paused", d.status())
    d.cmd("cont")
    check(d.status() == "running", d.status())
    vmm.close()


def test_stop_timeout(env):
    d, vmm = daemon(env, stop_timeout=300)
    status = stop_and_query(d)
    check(status == "running", status)
    check(d.qmp.read_reply() == {"return": {}}, "stop answered")
    wait_for(lambda: "stop failed, the VM keeps running" in d.log_text(), 5,
             "the stop to give up")
    check("requests still in flight 300 ms after the stop (stop-timeout)"
          in d.log_text(), "the reason is logged")
    check(d.status() == "running", d.status())
    check(not any(e["event"] == "STOP" for e in d.qmp.events), "no STOP")
    wait_for(lambda: vmm.used_idx() == 2, 10, "the READ completes later")
    check(vmm.scsi_status() == 0, "GOOD")
    d.cmd("stop")
    d.qmp.wait_event("STOP", timeout=5)
    check(d.status() == "paused", d.status())
    vmm.close()


def test_migrate_while_stopping(env):
    """A migration stops the source while its READ waits on the slow
    disk: the monitor answers, the destination's short peer-timeout does
    not expire (KEEPALIVE), and the migration completes."""
    img = env.image()
    src, vmm = daemon(env, img=img)
    mig = "unix:" + env.path("mig.sock")
    _, args = vus_args(env, img, "dst", delay_ms=0)
    dst = env.daemon("dst", args + ["--incoming", mig,
                                    "--peer-timeout", "300"])
    src.cmd("migrate", uri=mig)
    wait_for(lambda: src.cmd("query-migrate")["status"] == "active", 5,
             "HELLO exchanged, the devices stopping")
    t0 = time.monotonic()
    m = src.cmd("query-migrate")
    ms = (time.monotonic() - t0) * 1000
    check(ms < 100 and m["status"] == "active" and vmm.used_idx() == 1,
          f"query-migrate took {ms:.0f} ms while stopping: {m}")
    m = src.wait_migration()
    check(m["status"] == "completed" and m["downtime-parts"]["stop"] >
          DELAY_MS * 0.7, f"source: {m}")
    check(dst.wait_migration()["status"] == "completed", "destination")
    check(vmm.used_idx() == 2 and vmm.scsi_status() == 0,
          "the READ completed on the source before the handover")
    check(dst.owned() == ["d0"] and src.owned() == [], "one owner")
    vmm.close()


def test_cancel_while_stopping(env):
    """migrate_cancel while the source waits for its READ: the migration
    is cancelled at once and, once the stop finished, the source runs
    again with its disk."""
    img = env.image()
    src, vmm = daemon(env, img=img)
    mig = "unix:" + env.path("mig.sock")
    _, args = vus_args(env, img, "dst", delay_ms=0)
    env.daemon("dst", args + ["--incoming", mig])
    src.cmd("migrate", uri=mig)
    wait_for(lambda: src.cmd("query-migrate")["status"] == "active", 5,
             "HELLO exchanged, the devices stopping")
    check(vmm.used_idx() == 1, "the READ still in flight")
    src.cmd("migrate_cancel")
    m = src.cmd("query-migrate")
    check(m["status"] == "cancelled", f"source: {m}")
    wait_for(lambda: vmm.used_idx() == 2, 10, "the READ completes")
    src.qmp.wait_event("STOP", timeout=10)
    src.qmp.wait_event("RESUME", timeout=10)
    check(src.status() == "running" and src.owned() == ["d0"],
          f"running with its disk: {src.status()} {src.owned()}")
    vmm.close()


run_tests({
    "migrate": test_migrate_while_stopping,
    "cancel-migration": test_cancel_while_stopping,
    "waits-without-blocking": test_stop_waits_without_blocking,
    "timeout": test_stop_timeout,
})
