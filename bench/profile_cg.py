"""Where stormigd's time goes on the hottest path (4 KiB random reads at
QD 32, one queue), for each transport:

  - instructions per function (valgrind --tool=callgrind: this machine's
    perf has no hardware counters), self cost, top entries;
  - system calls per I/O (strace -c attached to the daemon), since a
    message-based transport spends its time in the kernel, which callgrind
    does not see.

Optional section (--sections profile): not part of the default run."""

import os
import re
import signal
import subprocess
import time

from benchlib import BenchError, log, run_json_line, wait_path

TOP = 15


def daemon_argv(cfg, image, client, sock):
    argv = [cfg["stormigd"], "--name", "prof", "--log-level", "warn",
            "--blockdev", f"driver=file,node-name=img,filename={image},"
            "cache.direct=on"]
    if client == "nvme":
        return argv + ["--device", f"nvme,id=nvme0,socket={sock},drive=img,"
                       "serial=PROF,num-queues=4"]
    return argv + ["--device", f"vhost-user-scsi,id=scsi0,socket={sock},"
                   "num-queues=1",
                   "--device", "scsi-hd,id=hd0,drive=img,bus=scsi0,lun=0"]


def bench(cfg, client, sock, runtime_ms):
    argv = [cfg["testvm"], "bench", "--socket", sock, "--queues", "1",
            "--qd", "32", "--namespaces", "1", "--blocks", "0", "--mem",
            "64M", "--write-pct", "0", "--runtime-ms", str(runtime_ms),
            "--ramp-ms", "200"]
    if client == "vhost-scsi":
        argv += ["--transport", "vhost-user"]
    return run_json_line(argv, timeout=120)


def start(argv, sock, log_path):
    if os.path.exists(sock):
        os.unlink(sock)
    logf = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)
    wait_path(sock, proc, timeout=60)
    return proc, logf


def stop(proc, logf):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    logf.close()


def callgrind(cfg, image, client):
    wd = cfg["workdir"]
    sock = os.path.join(wd, f"prof-{client}.sock")
    out = os.path.join(wd, f"callgrind-{client}.out")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    proc, logf = start(argv + daemon_argv(cfg, image, client, sock), sock,
                       os.path.join(wd, f"prof-{client}.log"))
    try:
        r = bench(cfg, client, sock, 3000)
    finally:
        stop(proc, logf)
    ann = subprocess.run(["callgrind_annotate", out], capture_output=True,
                         text=True).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS",
                          ann)[1].replace(",", ""))
    ios = r["ios"] * 3200 / 3000        # the ramp ran too
    rows = re.findall(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+\S*?:?(\S+) \[",
                      ann, re.M)
    top = [{"function": f.rsplit(":", 1)[-1], "percent": float(p)}
           for _, p, f in rows[:TOP]]
    return {"instructions_per_io": total / ios, "top_self": top,
            "iops_under_valgrind": r["iops"]}


def syscalls(cfg, image, client):
    wd = cfg["workdir"]
    sock = os.path.join(wd, f"prof-{client}.sock")
    proc, logf = start(daemon_argv(cfg, image, client, sock), sock,
                       os.path.join(wd, f"prof-{client}.log"))
    out = os.path.join(wd, f"strace-{client}.txt")
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p",
                           str(proc.pid)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        r = bench(cfg, client, sock, 2000)
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(30)
        stop(proc, logf)
    ios = r["ios"] * 2200 / 2000
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?"
                         r"(\w+)$", line)
            if m and m[2] != "total":
                calls[m[2]] = int(m[1]) / ios
    top = dict(sorted(calls.items(), key=lambda kv: -kv[1])[:8])
    return {"syscalls_per_io": sum(calls.values()), "by_call": top,
            "iops_under_strace": r["iops"]}


def run(cfg, image):
    log("profile: callgrind and syscall counts, randread QD 32")
    res = {}
    for client in ("nvme", "vhost-scsi"):
        try:
            res[client] = {"callgrind": callgrind(cfg, image, client),
                           "syscalls": syscalls(cfg, image, client)}
        except (OSError, TypeError) as e:
            raise BenchError(f"profile {client}: {e}")
        cg, sc = res[client]["callgrind"], res[client]["syscalls"]
        log(f"  {client}: {cg['instructions_per_io']:.0f} instructions and "
            f"{sc['syscalls_per_io']:.2f} system calls per I/O; top: " +
            ", ".join(f"{t['function']} {t['percent']:.1f}%"
                      for t in cg["top_self"][:5]))
    return res
