"""stormig benchmarks: data path (native client and a real guest) side by
side with fio and QEMU, switchover time, memory. Writes latest.json,
latest.md and latest.png into the results directory.

    bench.py --build BUILD --source-root SRC --out DIR [--quick]
             [--sections native,guest,switchover,switchover-scsi,memory,
              profile]

Python 3 standard library only.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
import report  # noqa: E402

SECTIONS = ("native", "guest", "switchover", "switchover-scsi", "memory")


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": mem_kib / 2**20,
            "kernel": os.uname().release,
            "loadavg_start": os.getloadavg()}


def buildtype(build):
    try:
        out = subprocess.run(["meson", "introspect", "--buildoptions",
                              build], capture_output=True, text=True).stdout
        for o in json.loads(out):
            if o["name"] == "buildtype":
                return o["value"]
    except (OSError, ValueError):
        pass
    return "unknown"


def config(args):
    quick = args.quick
    return {
        "stormigd": os.path.join(args.build, "stormigd"),
        "testvm": os.path.join(args.build, "stormig-testvm"),
        "source_root": args.source_root,
        "workdir": os.path.join(args.out, "work"),
        "image_mib": 256 if quick else 1024,
        "reps": 1 if quick else 3,
        "runtime_ms": 1000 if quick else 2000,
        "ramp_ms": 300 if quick else 500,
        "guest_reps": 1 if quick else 3,
        "guest_runtime_s": 2 if quick else 4,
        "mig_rounds": 4 if quick else 20,
        "scsi_hops": 3 if quick else 8,
        "mem_reps": 1 if quick else 2,
    }


def guest_image(args, cfg):
    script = os.path.join(args.source_root, "scripts", "build-guest.sh")
    outdir = os.path.join(args.build, "tests", "guest", "image")
    r = subprocess.run(["sh", script, outdir], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise benchlib.BenchError("guest image: " + r.stdout[-800:] +
                                  r.stderr[-800:])
    cfg["guest_image"] = {"kernel": os.path.join(outdir, "vmlinuz"),
                          "initrd": os.path.join(outdir,
                                                 "initramfs.cpio.gz")}


def run_section(name, args, cfg, image):
    if name == "native":
        import native
        return native.run(cfg, image)
    if name == "guest":
        import guest
        guest_image(args, cfg)
        return guest.run(cfg, image)
    if name == "switchover":
        import switchover
        return switchover.run(cfg)
    if name == "switchover-scsi":
        import switchover_scsi
        guest_image(args, cfg)
        return switchover_scsi.run(cfg)
    if name == "memory":
        import memory
        return memory.run(cfg, image)
    if name == "profile":
        import profile_cg
        return profile_cg.run(cfg, image)
    raise SystemExit(f"unknown section {name}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", required=True)
    p.add_argument("--source-root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true",
                   help="one short repetition of everything (a smoke run)")
    p.add_argument("--sections", default=",".join(SECTIONS))
    args = p.parse_args()
    args.build = os.path.abspath(args.build)
    args.out = os.path.abspath(args.out)
    cfg = config(args)
    os.makedirs(cfg["workdir"], exist_ok=True)
    started = time.monotonic()
    res = {"date": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "buildtype": buildtype(args.build),
           "config": {k: v for k, v in cfg.items()
                      if k not in ("stormigd", "testvm", "source_root",
                                   "workdir")}}
    image = benchlib.make_image(os.path.join(cfg["workdir"], "disk.img"),
                                cfg["image_mib"])
    failed = []
    for name in args.sections.split(","):
        t0 = time.monotonic()
        try:
            res[name] = run_section(name, args, cfg, image)
        except (benchlib.BenchError, subprocess.TimeoutExpired,
                OSError) as e:
            benchlib.log(f"{name}: FAILED: {e}")
            res[name] = {"error": str(e)[-3000:]}
            failed.append(name)
        res.setdefault("section_seconds", {})[name] = time.monotonic() - t0
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["total_seconds"] = time.monotonic() - started
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    ok = {k: v for k, v in res.items() if not (isinstance(v, dict) and
                                               "error" in v)}
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(report.markdown(ok))
        for name in failed:
            f.write(f"\n{name}: not measured: "
                    f"{res[name]['error'].splitlines()[0]}\n")
    report.plot(ok, args.out)
    benchlib.log(f"done in {res['total_seconds']:.0f} s; results in "
                 f"{args.out}/latest.{{json,md,png}}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
