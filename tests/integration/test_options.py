"""stormigd command line: every bad option is a clear error and exit 1;
--help and --version work."""

import os
import subprocess

from qmp import check, run_tests


def run(env, *args):
    p = subprocess.run([env.stormigd] + list(args), capture_output=True,
                       text=True, timeout=10)
    return p.returncode, p.stdout + p.stderr


def expect_error(env, args, *words):
    rc, out = run(env, *args)
    check(rc == 1, f"{args}: exit status {rc}, want 1\n{out}")
    for w in words:
        check(w in out, f"{args}: message lacks '{w}':\n{out}")


def test_help_version(env):
    rc, out = run(env, "--help")
    check(rc == 0 and "--blockdev" in out and "--incoming" in out, out)
    rc, out = run(env, "--version")
    check(rc == 0 and out.startswith("stormigd "), out)
    rc, out = run(env, "--device", "help")
    check(rc == 0 and "pattern-writer" in out, out)


def test_bad_options(env):
    img = env.image()
    bd = f"driver=file,node-name=d0,filename={img}"
    pw = "pattern-writer,id=pw0,drive=d0"
    expect_error(env, ["--bogus"], "unknown option", "--bogus")
    expect_error(env, ["--blockdev"], "needs a value")
    expect_error(env, ["stray"], "unexpected argument")
    expect_error(env, ["--log-level", "loud"], "log level")
    expect_error(env, ["--compat-version", "7"], "X.Y")
    expect_error(env, ["--blockdev", f"driver=qcow2,node-name=d0,"
                       f"filename={img}"], "unknown driver", "qcow2")
    expect_error(env, ["--blockdev", bd + ",colour=red"], "colour")
    expect_error(env, ["--blockdev", bd + ",read-only=maybe"], "read-only")
    expect_error(env, ["--blockdev", bd, "--blockdev", bd], "d0")
    expect_error(env, ["--blockdev", "driver=file,node-name=d1,filename=" +
                       env.path("missing.img")], "missing.img")
    expect_error(env, ["--blockdev", "driver=file,filename=" + img],
                 "node-name")
    expect_error(env, ["--device", "no-such-type,id=x"], "no-such-type")
    expect_error(env, ["--blockdev", bd, "--device", pw, "--device", pw],
                 "duplicate", "pw0")
    expect_error(env, ["--blockdev", bd, "--device", pw + ",speed=9"],
                 "speed")
    expect_error(env, ["--blockdev", bd, "--device",
                       "pattern-writer,id=pw0,drive=nope"], "nope")
    expect_error(env, ["--blockdev", bd, "--device", pw + ",blocks=100000"],
                 "blocks")
    # One block node serves one device: a second user is refused, named.
    expect_error(env, ["--blockdev", bd, "--device", pw, "--device",
                       "pattern-writer,id=pw1,drive=d0"],
                 "already used by device", "pw0")
    expect_error(env, ["--blockdev", bd, "--device",
                       "vhost-user-scsi,id=s0,socket=" + env.path("s0.sock"),
                       "--device", "scsi-hd,id=hd0,drive=d0,bus=s0",
                       "--device", "scsi-hd,id=hd1,drive=d0,bus=s0,lun=1"],
                 "already used by device", "hd0")
    expect_error(env, ["--blockdev", bd, "--device", pw, "--device",
                       "nvme,id=n0,socket=" + env.path("n0.sock") +
                       ",drive=d0,serial=S0"],
                 "already used by device", "pw0")
    expect_error(env, ["--incoming", "ftp:host"], "ftp:host")
    expect_error(env, ["--incoming", "tcp:127.0.0.1:99999999"],
                 "tcp port '99999999' is out of range")
    expect_error(env, ["--incoming", "tcp:127.0.0.1:65536"], "65536")
    for v in ["99999999999.1", "-1.-1", "1.-1", "+1.2", "1.2x", "65536.0"]:
        expect_error(env, ["--compat-version", v], "--compat-version", v)
    for name in ["a:b", "1disk", "d" * 32, "disk/0", "-d"]:
        expect_error(env, ["--blockdev", "driver=file,node-name=" + name +
                           ",filename=" + img], "node-name", name)
    sock = env.path("shared.sock")
    expect_error(env, ["--device", "vhost-user-scsi,id=s0,socket=" + sock,
                       "--device", "vhost-user-scsi,id=s1,socket=" +
                       sock.replace("/shared", "//shared")],
                 "socket=", "already used by device 's0'")
    expect_error(env, ["--blockdev", bd, "--device",
                       "vhost-user-scsi,id=s0,socket=" + sock, "--device",
                       "nvme,id=n0,drive=d0,serial=S0,socket=" +
                       sock.replace("/shared", "/./shared")],
                 "socket=", "already used by device 's0'")
    expect_error(env, ["--blockdev", bd, "--blockdev",
                       "driver=file,node-name=d1,filename=" +
                       env.image("other.img"),
                       "--device", "nvme,id=n0,drive=d0,serial=S0,socket=" +
                       sock, "--device",
                       "nvme,id=n1,drive=d1,serial=S1,socket=" + sock],
                 "socket=", "already used by device 'n0'")
    expect_error(env, ["--device", "vhost-user-scsi,id=s0,socket=" + img],
                 "socket=", "is not a socket")
    check(os.path.exists(img), "a file given as socket= is left alone")
    nvme = ("nvme,id=n0,socket=" + env.path("n0.sock") +
            ",drive=d0,serial=S0")
    for opt, says in [("num-queues=0", "num-queues=0 is not in 1.."),
                      ("num-queues=65", "num-queues=65 is not in 1.."),
                      ("mqes=1", "mqes=1 is not in 2..4096"),
                      ("lbads=10", "lbads=10 is neither 9 nor 12"),
                      ("dstrd=9", "dstrd=9 is not in 0..4")]:
        expect_error(env, ["--blockdev", bd, "--device", nvme + "," + opt],
                     says)
    expect_error(env, ["--blockdev", bd, "--device",
                       nvme.replace("drive=d0", "drive=d0:nope")],
                 "drive: no block node 'nope'")
    expect_error(env, ["--monitor", "tcp:1.2.3.4:5"], "--monitor")
    mon = "unix:" + env.path("m.qmp")
    expect_error(env, ["--monitor", mon + ",negotiation-timeout=0"],
                 "negotiation-timeout")
    expect_error(env, ["--monitor", mon + ",negotiation-timeout=soon"],
                 "negotiation-timeout")
    expect_error(env, ["--monitor", mon + ",idle=1"], "idle")


def test_scsi_hd_refused(env):
    """A scsi-hd that fails to realize is an error naming the property,
    never a crash, whatever step of realize it failed at."""
    img = env.image()
    bd = ["--blockdev", f"driver=file,node-name=d0,filename={img}"]
    ctrl = ["--device", "vhost-user-scsi,id=s0,socket=" +
            env.path("s0.sock")]
    hd = "scsi-hd,id=hd0,drive=d0,bus=s0"
    cases = [
        (ctrl + ["--device", "scsi-hd,id=hd0,drive=d0,bus=nope"],
         ["bus 'nope'"]),
        (["--device", hd] + ctrl, ["bus 's0'", "before its disks"]),
        (ctrl + ["--device", hd + ",logical_block_size=1000"],
         ["logical_block_size"]),
        (ctrl + ["--device", hd + ",discard_granularity=100"],
         ["discard_granularity"]),
        (ctrl + ["--device", hd + ",serial=" + "S" * 37],
         ["serial", "longer than 36"]),
        (ctrl + ["--device", hd + ",vendor=VENDOR123"],
         ["vendor", "longer than 8"]),
        (ctrl + ["--device", hd + ",serial=caf\u00e9"],
         ["serial", "printable ASCII"]),
        (ctrl + ["--device", hd + ",vendor=\u00e9"],
         ["vendor", "printable ASCII"]),
        (ctrl + ["--device", hd + ",lun=70000"], ["lun 70000"]),
        (ctrl + ["--device", hd.replace("drive=d0", "drive=nope")],
         ["drive: no block node 'nope'"]),
    ]
    for args, words in cases:
        expect_error(env, bd + args, *words)


def test_start_and_sigterm(env):
    img = env.image()
    d = env.daemon("a", ["--blockdev", f"driver=file,node-name=d0,"
                         f"filename={img}", "--compat-version", "0.1"])
    check(d.status() == "running", "a fresh daemon runs")
    check(d.stop() == 0, "SIGTERM is a clean exit")
    check("shutting down" in d.log_text(), "the shutdown is logged")


run_tests({
    "help-version": test_help_version,
    "bad-options": test_bad_options,
    "scsi-hd-refused": test_scsi_hd_refused,
    "start-sigterm": test_start_and_sigterm,
})
