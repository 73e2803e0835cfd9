"""libiscsi's SCSI conformance suite (iscsi-test-cu) on three disks.

One guest sees, through SG_IO on its /dev/sgN:
  - stormigd's scsi-hd (vhost-user-scsi, LUN 0, vendor STORMIG),
  - stormigd's scsi-block on a tgtd LUN (LUN 1, tgtd's identity IET),
  - QEMU's own scsi-hd on a virtio-scsi-pci controller (vendor QEMU),
and iscsi-test-cu runs its SCSI family (less SCSI.Sanitize.OverwriteReserved,
which crashes the tool on SG_IO) against each, one after the other.  The
logs leave the guest on a small extra virtio disk the host reads after
shutdown (a log of megabytes over the console would stall the harness).
The suite also runs from the host against the tgtd LUN directly
(iscsi://), so scsi-block's results can be told from tgtd's own.

Every result is compared with tests/guest/iscsi-conformance-expected.txt,
which lists the tests expected to fail, each with the SCSI rule at stake:
any other test that fails (or does not run) fails this test; a listed
test that no longer fails is reported (the list should be updated).
Skips (the tool found a feature absent or a precondition unmet) are
counted, not judged.  Counts per disk are printed.
"""

import os
import re
import subprocess
import time

import guestlib
import tgtlib
import vhostlib

IMAGE_SIZE = 256 << 20
LUN_SIZE = 256 << 20
LOG_DISK_SIZE = 64 << 20
SKIP_TESTS = {"SCSI.Sanitize.OverwriteReserved"}
EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "iscsi-conformance-expected.txt")
# Targets as the expected-results file names them.
TARGETS = ("stormig-hd", "stormig-block", "qemu-hd", "tgtd")


def scsi_tests():
    """SCSI.SUITE.TEST names iscsi-test-cu knows, less SKIP_TESTS."""
    out = subprocess.run(["iscsi-test-cu", "--list"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=False).stdout
    names = re.findall(rb"^(SCSI\.\w+\.\w+)$", out, re.M)
    return [n.decode() for n in names if n.decode() not in SKIP_TESTS]


VERDICT = re.compile(r"(?<!\[)\b(passed|FAILED)\b(?!\])")


def parse_results(log):
    """{SCSI.SUITE.TEST: 'pass' | 'fail' | 'skip'} from a CUnit verbose
    log.  Each test's block starts at its "Test: NAME ..." line; CUnit's
    verdict is the first bare "passed" or "FAILED" in it (the tool's own
    messages say "[FAILED]", "[SKIPPED]", and a cleanup may log after the
    verdict); a test that logged "[SKIPPED]" before passing was skipped,
    and one without a verdict crashed the tool."""
    results = {}
    suite = test = None
    body = []

    def close():
        if not test:
            return
        text = "\n".join(body)
        m = VERDICT.search(text)
        if not m or m.group(1) == "FAILED":
            verdict = "fail"
        elif "[SKIPPED]" in text[:m.start()]:
            verdict = "skip"
        else:
            verdict = "pass"
        results[f"SCSI.{suite}.{test}"] = verdict
    for line in log.splitlines():
        m = re.match(r"^Suite: (\S+)", line)
        t = re.match(r"^  Test: (\S+) \.\.\.(.*)$", line)
        if m:
            close()
            suite, test, body = m.group(1), None, []
        elif t:
            close()
            test, body = t.group(1), [t.group(2)]
        elif test:
            body.append(line)
    close()
    return results


def load_expected():
    """{(target, test): reason} of the tests expected to fail."""
    expected = {}
    with open(EXPECTED) as f:
        for line in f:
            line, _, reason = line.partition("#")
            if not line.strip():
                continue
            fields = line.split()
            if (len(fields) != 3 or fields[0] not in TARGETS or
                    fields[2] != "fail" or not reason.strip()):
                raise guestlib.GuestError(f"{EXPECTED}: bad line: {line}")
            expected[(fields[0], fields[1])] = reason.strip()
    return expected


def compare(target, tests, results, expected):
    """Counts, regressions (not expected to fail, failed or did not run)
    and news (expected to fail, did not).  A skip (the tool found the
    feature absent or a precondition unmet) is counted, not judged."""
    counts = {"pass": 0, "fail": 0, "skip": 0, "missing": 0}
    regressions, news = [], []
    for name in tests:
        got = results.get(name, "missing")
        counts[got] += 1
        want_fail = (target, name) in expected
        if not want_fail and got in ("fail", "missing"):
            regressions.append(f"{target} {name}: {got}")
        elif want_fail and got != "fail":
            news.append(f"{target} {name}: {got}, expected to fail")
    return counts, regressions, news


def cross_check(parsed, expected):
    """What the targets must be to each other: stormigd's scsi-hd passes
    every test QEMU's own scsi-hd passes, unless the expected-results file
    explains it; stormigd's scsi-block fails only what tgtd itself fails
    when tested directly from the host."""
    bad = []
    for name, got in parsed["qemu-hd"].items():
        ours = parsed["stormig-hd"].get(name, "missing")
        if (got == "pass" and ours != "pass" and
                ("stormig-hd", name) not in expected):
            bad.append(f"stormig-hd {name}: {ours}, QEMU's scsi-hd passes")
    for name, got in parsed["stormig-block"].items():
        if got == "fail" and parsed["tgtd"].get(name) != "fail":
            bad.append(f"stormig-block {name}: fail, tgtd from the host "
                       f"{parsed['tgtd'].get(name, 'missing')}")
    return bad


def find_sg(guest):
    """{vendor: /dev/sgN} for the guest's SCSI disks."""
    found = {}
    for n in range(8):
        dev = f"/dev/sg{n}"
        out, status = guest.run(f"sg_inq {dev}")
        m = re.search(r"Vendor identification: (\S+)", out)
        if status == 0 and m:
            found[m.group(1)] = dev
    return found


def run_in_guest(guest, sg, tests, log_offset):
    """Runs the suite on sg, its log written to /dev/vda at log_offset
    (MiB). Returns the seconds it took."""
    started = time.monotonic()
    # The test list is long: pass it through a file, written in pieces.
    guest.check("rm -f /tmp/tests")
    for i in range(0, len(tests), 20):
        guest.check("echo " + ",".join(tests[i:i + 20]) + ", >>/tmp/tests")
    guest.check("tr -d '\\n' </tmp/tests | sed 's/,$//' >/tmp/tests1")
    guest.run(f"iscsi-test-cu -d -t \"$(cat /tmp/tests1)\" {sg} "
              f">/tmp/log 2>&1; echo rc=$? >>/tmp/log", timeout=3000)
    guest.check(f"dd if=/tmp/log of=/dev/vda bs=1M seek={log_offset} "
                "conv=fsync 2>/dev/null")
    return time.monotonic() - started


def read_log(path, offset):
    with open(path, "rb") as f:
        f.seek(offset << 20)
        data = f.read(16 << 20)
    return data.split(b"\0", 1)[0].decode(errors="replace")


def run_on_tgtd(url, tests, workdir):
    """The suite from the host against the tgtd LUN itself."""
    result = subprocess.run(["iscsi-test-cu", "-d", "-t", ",".join(tests),
                             url], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=1800)
    log = result.stdout.decode(errors="replace")
    with open(os.path.join(workdir, "tgtd.iscsi-test-cu.log"), "w") as f:
        f.write(log)
    return log


def main():
    args, image, workdir = guestlib.setup_test(__doc__)
    tests = scsi_tests()
    if not tests:
        raise SystemExit("iscsi-test-cu lists no SCSI tests")
    img = guestlib.make_disk(os.path.join(workdir, "hd.img"), IMAGE_SIZE)
    qemu_img = guestlib.make_disk(os.path.join(workdir, "qemu-hd.img"),
                                  IMAGE_SIZE)
    log_disk = guestlib.make_disk(os.path.join(workdir, "log.raw"),
                                  LOG_DISK_SIZE)
    lun_file = os.path.join(workdir, "lun.img")
    tgt_file = os.path.join(workdir, "tgt-direct.img")
    expected = load_expected()
    failures, news, summary = [], [], []

    def body():
        with tgtlib.Tgtd(workdir) as tgtd:
            cfg = {"workdir": workdir, "image": image, "image_file": img,
                   "stormigd": vhostlib.find_stormigd(),
                   "lun_url": tgtd.add_lun(lun_file, size=LUN_SIZE)}
            direct_url = tgtd.add_lun(tgt_file, target="direct",
                                      size=LUN_SIZE)
            host = vhostlib.Host(cfg, "h0")
            qemu_args = host.qemu_args
            host.qemu_args = lambda: qemu_args() + [
                "-drive", f"file={qemu_img},format=raw,if=none,id=qhd,"
                          "cache=none",
                "-device", "virtio-scsi-pci,id=qscsi",
                "-device", "scsi-hd,drive=qhd,bus=qscsi.0",
                "-drive", f"file={log_disk},format=raw,if=none,id=logd",
                "-device", "virtio-blk-pci,drive=logd"]
            logs = {}
            try:
                print(f"boot to prompt {host.boot():.1f}s")
                sgs = find_sg(host.guest)
                print(f"guest SCSI disks: {sgs}")
                plan = [("stormig-hd", vhostlib.VENDOR),
                        ("stormig-block", "IET"), ("qemu-hd", "QEMU")]
                for i, (target, vendor) in enumerate(plan):
                    if vendor not in sgs:
                        raise guestlib.GuestError(f"no {target} disk in "
                                                  f"the guest: {sgs}")
                    secs = run_in_guest(host.guest, sgs[vendor], tests,
                                        16 * i)
                    print(f"{target}: suite ran in {secs:.0f}s")
                host.guest.shutdown()
            finally:
                host.close()
            for i, (target, _) in enumerate(plan):
                logs[target] = read_log(log_disk, 16 * i)
            started = time.monotonic()
            logs["tgtd"] = run_on_tgtd(direct_url, tests, workdir)
            print(f"tgtd: suite ran in {time.monotonic() - started:.0f}s")
        parsed = {}
        for target in TARGETS:
            with open(os.path.join(workdir, target + ".log"), "w") as f:
                f.write(logs[target])
            results = parsed[target] = parse_results(logs[target])
            counts, bad, new = compare(target, tests, results, expected)
            summary.append(f"{target}: {counts['pass']} passed, "
                           f"{counts['fail']} failed, {counts['skip']} "
                           f"skipped, {counts['missing']} not run "
                           f"(of {len(tests)})")
            failures.extend(bad)
            news.extend(new)
        for line in summary:
            print(line)
        for line in news:
            print(f"no longer fails: {line}")
        failures.extend(cross_check(parsed, expected))
        if failures:
            raise guestlib.GuestError("expected to pass, did not:\n  " +
                                      "\n  ".join(failures))

    guestlib.run_test(body)
    for path in (img, qemu_img, log_disk, lun_file, tgt_file):
        os.unlink(path)


if __name__ == "__main__":
    main()
