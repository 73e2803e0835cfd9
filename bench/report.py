"""latest.md (the tables) and latest.png (gnuplot: downtime per migration
and IOPS per queue depth) from the results dictionary."""

import os
import subprocess


def fmt(s, scale=1.0, digits=0):
    """median [min-max] of a summary."""
    if not s:
        return "-"
    f = f"{{:.{digits}f}}"
    return (f.format(s["median"] * scale) + " [" + f.format(s["min"] * scale)
            + "-" + f.format(s["max"] * scale) + "]")


def native_table(nat):
    s = nat["summary"]
    lines = ["| client | rw | QD | IOPS | x fio | p50 us | x fio | p99 us |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for rw in ("randread", "randwrite"):
        for qd in ("1", "32", "128"):
            for c in ("fio", "nvme", "vhost-scsi"):
                p = s[c][rw][qd]
                lines.append(
                    f"| {c} | {rw} | {qd} | {fmt(p['iops'])} | "
                    f"{fmt(p.get('iops_ratio'), 1, 2)} | "
                    f"{fmt(p['p50_us'])} | {fmt(p.get('p50_ratio'), 1, 2)} | "
                    f"{fmt(p['p99_us'])} |")
    return lines


def guest_table(g):
    if "summary" not in g:
        return [f"not run: {g.get('error', 'unknown')}"]
    s = g["summary"]
    lines = ["| back end | rw | QD | IOPS | x QEMU | p50 us | p99 us |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for rw in ("randread", "randwrite"):
        for qd in ("1", "32"):
            for name in s:
                p = s[name][rw][qd]
                lines.append(f"| {name} | {rw} | {qd} | {fmt(p['iops'])} | "
                             f"{fmt(p.get('iops_ratio'), 1, 2)} | "
                             f"{fmt(p['p50_us'])} | {fmt(p['p99_us'])} |")
    return lines


def switchover_table(sw):
    s = sw["summary"]
    rows = [("downtime (all)", "downtime_us"),
            ("device part", "device_us"), ("quiesce", "quiesce_us"),
            ("save (STOP_COPY + read)", "save_us"),
            ("load (destination)", "load_us"),
            ("ownership handoff", "handoff_us"),
            ("start (destination RUNNING)", "start_us"),
            ("guest memory, last pages (VMM part)", "memory_us"),
            ("daemons' migrate, total", "daemon_total_us"),
            ("daemons' migrate, stopped", "daemon_stopped_us")]
    lines = ["| part | ms |", "| --- | ---: |"]
    for label, key in rows:
        lines.append(f"| {label} | {fmt(s[key], 1e-3, 2)} |")
    lines.append(f"| device state | {fmt(s['state_bytes'])} bytes |")
    lines.append(f"| commands in flight at stop | {fmt(s['in_flight'])} |")
    return lines


def switchover_scsi_table(sw):
    s = sw["summary"]
    rows = [("QEMU downtime (its own figure)", "qemu_downtime"),
            ("device part (source stop -> destination serving)", "device"),
            ("quiesce (source devices stopped)", "quiesce"),
            ("save (state serialised)", "save"),
            ("state transfer (channel, both ways)", "transfer"),
            ("load (destination)", "load"),
            ("ownership handoff (images)", "handoff"),
            ("PR takeover (verify reads, REGISTER + PREEMPT)", "pr_takeover"),
            ("device activation, other (reservation read back, other hooks)",
             "activate_other"),
            ("start (destination devices)", "start"),
            ("other (messages, main loops)", "other")]
    lines = ["| part | ms |", "| --- | ---: |"]
    for label, key in rows:
        lines.append(f"| {label} | {fmt(s[key], 1, 2)} |")
    lines.append(f"| device state | {fmt(s['state_bytes'])} bytes |")
    rt = s.get("pr_round_trips")
    lines.append("| PR takeover round trips to the LUN | " +
                 (fmt(rt) if rt else "not reported") + " |")
    return lines


def memory_table(mem):
    lines = ["| device | VmHWM KiB, 1/2/4 devices | 1/2/4 queues | "
             "KiB per device | KiB per queue |",
             "| --- | --- | --- | ---: | ---: |"]
    for kind, m in mem.items():
        if kind == "retries":
            continue
        d = " / ".join(f"{m['hwm_kib_by_devices'][n]['median']:.0f}"
                       for n in ("1", "2", "4"))
        q = " / ".join(f"{m['hwm_kib_by_queues'][n]['median']:.0f}"
                       for n in ("1", "2", "4"))
        lines.append(f"| {kind} | {d} | {q} | {m['kib_per_device']:.0f} | "
                     f"{m['kib_per_queue']:.0f} |")
    return lines


def goals_table(res):
    lines = ["| goal | measured | met |", "| --- | ---: | --- |"]
    met = {True: "yes", False: "no", None: "not measured"}
    for sec in ("native", "guest", "switchover", "switchover-scsi"):
        for g in res.get(sec, {}).get("goals", []):
            v = "-" if g["value"] is None else f"{g['value']:.2f}"
            lines.append(f"| {g['goal']} | {v} | {met[g['met']]} |")
    return lines


def retries_lines(res):
    out = []
    for sec in ("native", "memory"):
        for r in res.get(sec, {}).get("retries", []):
            last = r["error"].strip().splitlines()[-1][:160]
            out.append(f"- {sec}: {r['what']} failed once and was run "
                       f"again: `{last}`")
    return out


def markdown(res):
    m = res["machine"]
    out = [f"Run {res['date']}, {m['nproc']} CPUs ({m['cpu']}), "
           f"{m['mem_gib']:.1f} GiB, build type {res['buildtype']}; "
           f"figures: median [min-max] of {res['config']['reps']} runs "
           "(guest: {0}), ratios per repetition.".format(
               res['config']['guest_reps']), "", "### Goals", ""]
    out += goals_table(res)
    sections = (("native", "Data path, native client (4 KiB random, one "
                 "queue)", native_table),
                ("guest", "Data path, TCG guest (fio in the guest)",
                 guest_table),
                ("switchover", "Switchover, NVMe 4 x 1024 entries, QD 32",
                 switchover_table),
                ("switchover-scsi", "Switchover, vhost-user-scsi with an "
                 "EXCLUSIVE ACCESS reservation held (TCG guest, fio "
                 "verify)", switchover_scsi_table),
                ("memory", "Memory (peak RSS of stormigd)", memory_table))
    for key, title, fn in sections:
        if key in res:
            out += ["", f"### {title}", ""] + fn(res[key])
    retries = retries_lines(res)
    if retries:
        out += ["", "### Runs repeated after a failure", ""] + retries
    return "\n".join(out) + "\n"


def plot(res, outdir):
    """latest.png; returns its path or None when gnuplot is missing."""
    dat_sw = os.path.join(outdir, "downtime.dat")
    dat_io = os.path.join(outdir, "iops.dat")
    with open(dat_sw, "w") as f:
        f.write("# round downtime_ms device_ms handoff_ms\n")
        for r in res.get("switchover", {}).get("rounds", []):
            f.write(f"{r['round']} {r['downtime_us'] / 1e3} "
                    f"{r['device_us'] / 1e3} {r['handoff_us'] / 1e3}\n")
    with open(dat_io, "w") as f:
        f.write("qd " + " ".join(f"{c}-{rw}" for rw in ("randread",
                "randwrite") for c in ("fio", "nvme", "vhost-scsi")) + "\n")
        s = res.get("native", {}).get("summary")
        for qd in ("1", "32", "128"):
            vals = [s[c][rw][qd]["iops"]["median"] if s else 0
                    for rw in ("randread", "randwrite")
                    for c in ("fio", "nvme", "vhost-scsi")]
            f.write(qd + " " + " ".join(f"{v:.0f}" for v in vals) + "\n")
    dat_scsi = os.path.join(outdir, "downtime-scsi.dat")
    with open(dat_scsi, "w") as f:
        f.write("# hop device_ms pr_takeover_ms\n")
        for r in res.get("switchover-scsi", {}).get("rounds", []):
            f.write(f"{r['round']} {r['device']} {r['pr_takeover']}\n")
    png = os.path.join(outdir, "latest.png")
    script = f"""
set terminal pngcairo size 1200,480 font ",10"
set output '{png}'
set multiplot layout 1,2
set title 'Downtime per migration (NVMe 4 x 1024 QD 32; SCSI with a reservation)'
set xlabel 'migration'
set ylabel 'ms'
set key top left
set yrange [0:*]
plot '{dat_sw}' using 1:2 with linespoints title 'NVMe downtime (all)', \\
     '' using 1:3 with linespoints title 'NVMe device part', \\
     '' using 1:4 with linespoints title 'NVMe ownership handoff', \\
     '{dat_scsi}' using 1:2 with linespoints title 'SCSI device part', \\
     '' using 1:3 with linespoints title 'SCSI PR takeover', \\
     5 with lines dashtype 2 title 'NVMe goal 5 ms'
set title 'IOPS per queue depth (4 KiB random, median)'
set xlabel 'queue depth'
set ylabel 'IOPS'
set logscale x 2
set xtics (1, 32, 128)
set xrange [0.8:180]
set key top left
plot for [i=2:7] '{dat_io}' using 1:i with linespoints \\
     title columnheader(i)
unset multiplot
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"bench: no plot: {e}")
        return None
    return png
