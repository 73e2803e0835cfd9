"""tools/stormig-migrate: its argument checks, and its readiness checks
against real stormigd monitors (refused before anything is started). The
full run with two QEMUs belongs to the guest tests."""

import json
import os
import subprocess
import sys

from qmp import check, run_tests

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "tools", "stormig-migrate")


def migrate(*args):
    p = subprocess.run([sys.executable, TOOL] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def argv(src_q, dst_q, src_d, dst_d, *extra):
    return ["--src-qemu", src_q, "--dst-qemu", dst_q, "--src-stormigd",
            src_d, "--dst-stormigd", dst_d, "--uri", "tcp:127.0.0.1:4444",
            "--device-uri", "unix:/nonexistent/mig.sock"] + list(extra)


def expect_usage_error(args, words):
    rc, out, err = migrate(*args)
    check(rc == 2, f"{args}: exit {rc}, want 2\n{out}{err}")
    for w in words:
        check(w in err, f"{args}: stderr lacks {w!r}: {err}")


def test_arguments(env):
    a, b, c, d = (env.path(n) for n in ("a", "b", "c", "d"))
    expect_usage_error([], ["--src-qemu", "required"])
    expect_usage_error(argv(a, b, c, d)[:-2], ["--device-uri"])
    expect_usage_error(argv(a, b, c, c), ["four different sockets"])
    args = argv(a, b, c, d)
    args[args.index("--uri") + 1] = "ftp:host"
    expect_usage_error(args, ["--uri ftp:host", "tcp:HOST:PORT"])
    args = argv(a, b, c, d)
    args[args.index("--uri") + 1] = "unix:/nonexistent/mig.sock"
    expect_usage_error(args, ["must differ"])
    expect_usage_error(argv(a, b, c, d, "--timeout", "0"), ["--timeout"])
    rc, out, _ = migrate("--help")
    check(rc == 0 and "--device-uri" in out and "--json" in out, out)


def expect_refused(env, sockets, words, json_out=False):
    extra = ["--json"] if json_out else []
    rc, out, err = migrate(*argv(*sockets, *extra))
    check(rc == 2, f"exit {rc}, want 2\n{out}{err}")
    for w in words:
        check(w in err, f"stderr lacks {w!r}: {err}")
    if json_out:
        report = json.loads(out)
        check(report["result"] == "refused" and words[0] in report["error"],
              f"--json: {out}")


def test_readiness(env):
    img = env.image()
    bd = ["--blockdev", f"driver=file,node-name=d0,filename={img}"]
    src = env.daemon("src", bd)
    dst = env.daemon("dst", bd + ["--incoming", "defer"])
    # Stand-ins for QEMU: stormigd monitors answer query-status and
    # query-migrate as QEMU's do (running / inmigrate).
    r1, r2 = env.daemon("r1", []), env.daemon("r2", [])
    w1 = env.daemon("w1", ["--incoming", "defer"])
    w2 = env.daemon("w2", ["--incoming", "defer"])
    s = {d.name: d.sock_path for d in (src, dst, r1, r2, w1, w2)}
    missing = env.path("no-such.qmp")
    expect_refused(env, (missing, s["w1"], s["src"], s["dst"]),
                   ["src-qemu: cannot reach the QMP monitor", missing])
    expect_refused(env, (s["r1"], s["w1"], s["src"], s["r2"]),
                   ["destination stormigd is running", "--incoming"],
                   json_out=True)
    expect_refused(env, (s["r1"], s["w2"], s["dst"], s["w1"]),
                   ["source stormigd is inmigrate"])
    expect_refused(env, (s["w2"], s["w1"], s["src"], s["dst"]),
                   ["source QEMU is inmigrate"])
    expect_refused(env, (s["r1"], s["r2"], s["src"], s["dst"]),
                   ["destination QEMU is running", "-incoming defer"])
    # Nothing was started on either side.
    for d in (src, dst):
        check(d.cmd("query-migrate")["status"] == "none",
              f"{d.name}: {d.cmd('query-migrate')}")
    check(src.owned() == ["d0"] and dst.owned() == [], "disks unmoved")

if __name__ == "__main__":
    run_tests({
        "arguments": test_arguments,
        "readiness": test_readiness,
    })
