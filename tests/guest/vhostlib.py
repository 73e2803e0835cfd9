"""Guests whose SCSI controller is served by stormigd over vhost-user.

A Host is one "machine" of a migration test: a stormigd process serving a
vhost-user-scsi controller (with a scsi-hd on an image file and, when a
tgtd LUN is given, a scsi-block on it) and the QEMU that uses it.  Two
Hosts share the image and the LUN, as two machines share storage.

migrate(src, dst) moves the VM the way the design prescribes:
  1. the destination stormigd waits for the source (started --incoming);
  2. the source stormigd starts a migration with "vmm-stop": it connects
     and then waits, still serving the guest;
  3. QEMU migrates; at its end it stops the device (GET_VRING_BASE on
     every ring), which releases the source stormigd: it sends the device
     state and hands the disks over while QEMU finishes;
  4. both migrations must complete; before the destination QEMU (started
     paused) runs, its guest memory is compared with the source's
     (guestmem.py): a differing page the source stormigd wrote, or one
     it wrote past the end of QEMU's dirty log, fails the test; on QEMU
     7.2 any other differing page is QEMU's loss, restored and counted,
     on later QEMUs it fails the test too;
  5. the destination runs; the source pair is shut down.

Python 3 standard library only.
"""

import argparse
import os
import shutil
import sys
import time

import guestlib
import tgtlib

VENDOR = "STORMIG"
PRODUCT = "E2E-DISK"
SERIAL = "SMG-E2E-0001"
INITIATOR = "iqn.2024-01.org.stormig.test:stormigd"


def find_stormigd(args=None):
    """The stormigd binary meson passes in the environment."""
    path = os.environ.get("STORMIGD")
    if not path or not os.access(path, os.X_OK):
        raise guestlib.GuestError("STORMIGD does not name the stormigd "
                                  "binary")
    return path


def main_with_disks(doc, run, image_size, lun_size, **extra):
    """The main() of a guest test on stormigd: a scratch image for the
    scsi-hd, a tgtd LUN of lun_size for the scsi-block, then run(cfg)
    with the cfg Host() takes (extra members added), inside
    guestlib.run_test; the scratch files go afterwards."""
    args, image, workdir = guestlib.setup_test(doc)
    img = guestlib.make_disk(os.path.join(workdir, "hd.img"), image_size)
    lun_file = os.path.join(workdir, "lun.img")

    def body():
        with tgtlib.Tgtd(workdir) as tgtd:
            cfg = {"workdir": workdir, "image": image, "image_file": img,
                   "stormigd": find_stormigd(),
                   "lun_url": tgtd.add_lun(lun_file, size=lun_size),
                   "lun_file": lun_file}
            cfg.update(extra)
            run(cfg)

    guestlib.run_test(body)
    os.unlink(img)
    os.unlink(lun_file)


def demo_main(doc, demo, what, image_size, lun_size):
    """The main() of a make demo part on stormigd: builds (or reuses) the
    guest image, a scsi-hd image of image_size and a tgtd LUN of lun_size
    in --work-dir, then returns demo(cfg) as the exit status (1, with the
    reason, on a GuestError)."""
    p = argparse.ArgumentParser(description=doc)
    for opt in ("--stormigd", "--build-script", "--image-dir", "--work-dir"):
        p.add_argument(opt, required=True)
    args = p.parse_args()
    if not shutil.which(guestlib.QEMU) or not shutil.which("tgtd"):
        print(f"{what} skipped: QEMU or tgtd is not installed")
        return 0
    image = guestlib.build_image(args.build_script, args.image_dir)
    os.makedirs(args.work_dir, exist_ok=True)
    img = guestlib.make_disk(os.path.join(args.work_dir, "hd.img"),
                             image_size)
    with tgtlib.Tgtd(args.work_dir) as tgtd:
        cfg = {"workdir": args.work_dir, "image": image, "image_file": img,
               "stormigd": os.path.abspath(args.stormigd),
               "lun_url": tgtd.add_lun(os.path.join(args.work_dir,
                                                    "lun.img"),
                                       size=lun_size)}
        try:
            return demo(cfg)
        except guestlib.GuestError as e:
            print(f"{what} failed: {e}", file=sys.stderr)
            return 1


def guest_disks(guest):
    """[the scsi-hd disk, the scsi-block disk (if any)] as the guest
    names them, told apart by their INQUIRY vendor."""
    found = {}
    for dev in ("/dev/sda", "/dev/sdb"):
        out, status = guest.run(f"sg_inq {dev}")
        if status == 0 and f"Vendor identification: {VENDOR}" in out:
            found["hd"] = dev
        elif status == 0 and "Vendor identification: IET" in out:
            found["pt"] = dev
    if "hd" not in found:
        raise guestlib.GuestError(f"the guest does not see the scsi-hd "
                                  f"disk: {found}")
    return [found["hd"]] + ([found["pt"]] if "pt" in found else [])


class Stormigd:
    """One stormigd process with its QMP monitor."""

    def __init__(self, binary, workdir, name, args):
        self.name = name
        self.qmp_path = os.path.join(workdir, name + ".qmp")
        self.log_path = os.path.join(workdir, name + ".stormigd.log")
        for path in (self.qmp_path,):
            if os.path.exists(path):
                os.unlink(path)
        argv = [binary, "--name", name, "--monitor", "unix:" + self.qmp_path,
                "--log-level", os.environ.get("STORMIGD_LOG_LEVEL", "info")]
        with open(self.log_path, "ab") as log:
            log.write((" ".join(argv + list(args)) + "\n").encode())
        self.proc = guestlib.spawn(argv + list(args), self.log_path)
        self.qmp = guestlib.Qmp(self.qmp_path, 30, self.check_alive)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise guestlib.GuestError(
                f"stormigd {self.name} exited with {self.proc.returncode}:\n"
                f"{self.log_tail()}")

    def log_tail(self, size=3000):
        with open(self.log_path, "rb") as log:
            return log.read()[-size:].decode(errors="replace")

    def cmd(self, name, args=None):
        self.check_alive()
        return self.qmp.command(name, args)

    def owns_disks(self):
        return all(b["owned"] for b in self.cmd("query-block"))

    def status(self):
        return self.cmd("query-status")["status"]

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.qmp.command("quit")
                self.proc.wait(10)
            except (guestlib.GuestError, OSError):
                pass
        guestlib.kill_process(self.proc)
        self.qmp.close()


class Host:
    """A stormigd and the QEMU it serves; start() boots or awaits the VM."""

    def __init__(self, cfg, name, incoming=False, dirty_log=True):
        self.cfg = cfg
        self.name = name
        wd = cfg["workdir"]
        self.vhost_sock = os.path.join(wd, name + ".vhost")
        self.mig_sock = os.path.join(wd, name + ".stormig-mig")
        devices = [f"vhost-user-scsi,id=scsi0,socket={self.vhost_sock},"
                   f"num-queues=2,dirty-log={'on' if dirty_log else 'off'}",
                   f"scsi-hd,id=hd0,drive=img0,bus=scsi0,lun=0,"
                   f"vendor={VENDOR},product={PRODUCT},serial={SERIAL}"]
        self.initiator = f"{INITIATOR}:{name}"
        if cfg.get("lun_url"):
            pr = cfg.get("migrate_pr")
            devices.append(f"scsi-block,id=pt0,url={cfg['lun_url']},"
                           f"initiator-name={self.initiator},bus=scsi0,"
                           "lun=1" + (f",migrate-pr={pr}" if pr else "") +
                           (",x-lun-caps=on" if cfg.get("x_lun_caps")
                            else ""))
        # Each daemon its own reservation journal: two daemons on one
        # host must never share journal files.
        self.pr_journal = os.path.join(wd, name + ".pr-journal")
        args = ["--pr-journal", self.pr_journal,
                "--blockdev", f"driver=file,node-name=img0,"
                f"filename={cfg['image_file']},cache.direct=on"]
        for d in devices:
            args += ["--device", d]
        if incoming:
            args += ["--incoming", "unix:" + self.mig_sock]
        self.incoming = incoming
        self.daemon_args = args
        self.daemon = None
        self.guest = None

    def qemu_args(self):
        return ["-chardev", f"socket,id=c0,path={self.vhost_sock}",
                "-device", "vhost-user-scsi-pci,chardev=c0,num_queues=2"]

    def start_daemon(self):
        self.daemon = Stormigd(self.cfg["stormigd"], self.cfg["workdir"],
                               self.name, self.daemon_args)
        return self

    def boot(self, timeout=120):
        """Start stormigd and QEMU, wait for the prompt; returns seconds."""
        self.start_daemon()
        self.guest = guestlib.Guest(self.cfg["image"], self.cfg["workdir"],
                                    name=self.name + "-qemu", smp=self.cfg.get("smp", 1),
                                    extra_args=self.qemu_args())
        self.guest.start()
        return self.guest.wait_boot(timeout)

    def await_incoming(self, src):
        """Start stormigd and a QEMU -incoming like src's."""
        self.start_daemon()
        self.guest = guestlib.start_destination(
            src.guest, name=self.name + "-qemu", extra_args=self.qemu_args())
        return self

    def close(self):
        if self.guest:
            self.guest.close()
        if self.daemon:
            self.daemon.quit()


def wait_migration(daemon, timeout, states=("completed",)):
    """Poll a stormigd's query-migrate until it reaches one of states."""
    deadline = time.monotonic() + timeout
    while True:
        info = daemon.cmd("query-migrate")
        if info["status"] in states:
            return info
        if info["status"] in ("failed", "cancelled"):
            raise guestlib.GuestError(
                f"stormigd {daemon.name} migration {info['status']}: "
                f"{info.get('error-desc')}")
        if time.monotonic() >= deadline:
            raise guestlib.GuestTimeout(
                f"stormigd {daemon.name} migration still {info['status']}")
        time.sleep(0.05)


def start_device_handoff(src, dst):
    """Steps 1-2: the source stormigd connects and waits for QEMU."""
    src.daemon.cmd("migrate", {"uri": "unix:" + dst.mig_sock,
                               "vmm-stop": True})
    info = wait_migration(src.daemon, 30, ("active",))
    if dst.daemon.owns_disks():
        raise guestlib.GuestError("destination owns the disks before the "
                                  "migration")
    return info


def migrate(src, dst, timeout=180, keep_source=False):
    """Move the VM from Host src to Host dst (awaiting it); returns stats.

    keep_source: leave the source stormigd running (postmigrate, its
    sessions still logged in) for the caller to inspect and close."""
    start_device_handoff(src, dst)
    handoff = {}

    def handoff_done():
        """Both stormigd finished: the source's record is final."""
        handoff["src"] = wait_migration(src.daemon, 30)
        wait_migration(dst.daemon, 30)
        if src.daemon.owns_disks() or not dst.daemon.owns_disks():
            raise guestlib.GuestError("disk ownership did not move with "
                                      "the VM")
        record = src.daemon.cmd("x-vhost-user-written-pages",
                                {"id": "scsi0"})
        # A write past the end of QEMU's log set no bit QEMU could see.
        if record["log-missed-pages"]:
            raise guestlib.GuestError(
                f"stormigd {src.daemon.name} wrote "
                f"{record['log-missed-pages']} guest page(s) past the end "
                "of QEMU's dirty log")
        handoff["written"] = record["pages"]
        handoff["log_missed"] = record["log-missed-pages"]
        return handoff["written"]

    qemu = guestlib.migrate(src.guest, dst.guest, timeout=timeout,
                            written_pages=handoff_done)
    src_info = handoff["src"]
    if dst.daemon.status() != "running":
        raise guestlib.GuestError("destination stormigd does not run")
    src.guest = None  # guestlib.migrate stopped the source QEMU
    if not keep_source:
        src.close()
    return {
        "qemu_downtime_ms": qemu.get("downtime"),
        "qemu_total_ms": qemu.get("total-time"),
        "handoff_downtime_ms": src_info.get("downtime"),
        "vmm_wait_ms": src_info.get("vmm-wait"),
        "state_bytes": src_info.get("device-state-size"),
        "pages_compared": qemu["pages-compared"],
        "qemu_lost_pages": qemu["qemu-lost-pages"],
        "stormigd_written_pages": sum(n for _, n in handoff["written"]),
        "stormigd_log_missed_pages": handoff["log_missed"],
    }


def format_stats(stats):
    return (f"QEMU downtime {stats['qemu_downtime_ms']} ms "
            f"(total {stats['qemu_total_ms']} ms), device handoff "
            f"{stats['handoff_downtime_ms']:.1f} ms, device state "
            f"{stats['state_bytes']} bytes")


# --- fio in the guest ----------------------------------------------------------

FIO_DIR = "/tmp/fioloop"


def fio_job(dev, size, report):
    """Random 4k writes over size bytes, then a crc32c verify of all."""
    return (f"fio --name=verify --filename={dev} --direct=1 "
            f"--ioengine=libaio --iodepth=16 --rw=randwrite --bs=4k "
            f"--size={size} --verify=crc32c --verify_fatal=1 "
            f"--output-format=json --output={report}")


def fio_loop_start(guest, devs, size):
    """Run fio verify on every device in devs, round after round, until
    fio_loop_stop(); each round's exit status and report are kept."""
    guest.check(f"rm -rf {FIO_DIR}; mkdir -p {FIO_DIR}")
    for dev in devs:
        name = os.path.basename(dev)
        guest.check(
            f"(n=0; while [ ! -e {FIO_DIR}/stop ]; do n=$((n+1)); "
            f"{fio_job(dev, size, f'{FIO_DIR}/{name}.$n.json')} "
            f">{FIO_DIR}/{name}.$n.log 2>&1; echo $? >{FIO_DIR}/{name}.$n.rc;"
            f" done; touch {FIO_DIR}/{name}.done) &")


def fio_rounds(guest, dev):
    """Rounds of dev finished so far."""
    name = os.path.basename(dev)
    out = guest.check(f"ls {FIO_DIR} | grep -c '^{name}\\..*\\.rc$' || true")
    return int(out.strip() or 0)


def fio_loop_stop(guest, devs, size, timeout=120):
    """Stop the loops, wait for their last round; check every report.

    Returns the number of rounds per device.  Every round must have
    exited 0, written size bytes and read them all back verified."""
    guest.check(f"touch {FIO_DIR}/stop")
    rounds = {}
    for dev in devs:
        name = os.path.basename(dev)
        guest.check(f"while [ ! -e {FIO_DIR}/{name}.done ]; do sleep 0.2; "
                    "done", timeout=timeout)
        n = fio_rounds(guest, dev)
        for i in range(1, n + 1):
            check_round(guest, f"{FIO_DIR}/{name}.{i}", size)
        rounds[dev] = n
    return rounds


def check_round(guest, base, size):
    import json
    status = int(guest.check(f"cat {base}.rc").strip())
    text = guest.check(f"cat {base}.json 2>/dev/null || true")
    if status != 0:
        log = guest.check(f"cat {base}.log")
        raise guestlib.GuestError(f"{base}: fio exited with {status}:\n"
                                  f"{log}\n{text[-2000:]}")
    try:
        job = json.loads(text[text.index("{"):])["jobs"][0]
    except (ValueError, KeyError, IndexError) as e:
        raise guestlib.GuestError(f"{base}: unreadable fio report ({e})")
    for what, got, want in (("error", job["error"], 0),
                            ("total_err", job.get("total_err", 0), 0),
                            ("bytes written", job["write"]["io_bytes"], size),
                            ("bytes verified", job["read"]["io_bytes"],
                             size)):
        if got != want:
            raise guestlib.GuestError(f"{base}: fio {what} {got}, "
                                      f"expected {want}")


def guest_md5(guest, dev, size):
    """md5 of the first size bytes of dev, read by the guest (direct)."""
    out = guest.check(f"dd if={dev} bs=1M count={size >> 20} iflag=direct "
                      "2>/dev/null | md5sum")
    return out.split()[0]


def file_md5(path, size):
    import hashlib
    h = hashlib.md5()
    with open(path, "rb") as f:
        h.update(f.read(size))
    return h.hexdigest()
