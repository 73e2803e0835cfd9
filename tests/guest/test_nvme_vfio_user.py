"""A Linux guest whose NVMe controllers are stormigd's, over vfio-user.

QEMU (11.1; 7.2 has no vfio-user client and the test is skipped) runs
`-device vfio-user-pci` twice on a shared memfd; stormigd serves
nvme0 (512 B LBAs, two namespaces) and nvme1 (4 KiB LBAs, one namespace),
two I/O queue pairs each.

- 2 vCPUs: `nvme id-ctrl` / `id-ns` show the serial, model, number of
  namespaces, namespace sizes and LBA formats stormigd was configured
  with; fio (io_uring, direct, crc32c verify) passes on every namespace;
  both I/O queues of nvme0 take interrupts (fio on either vCPU);
  `nvme reset` and a guest reboot (`reboot -f`), each with data written
  before and read back after, and fio after;
  stormigd refuses `migrate`, naming nvme0: QEMU 11.1's vfio-user-pci
  does not take part in vfio-user migration, so the device state would
  be lost.
- 1 vCPU, guest RAM without an fd (memory-backend-ram): stormigd cannot
  map it and reaches every buffer through DMA_READ / DMA_WRITE messages;
  the controllers come up with one I/O queue, data written is read back
  and fio verify passes.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import guestlib
import vhostlib
from guestcheck import expect_equal, fio_verify

NS_SIZES = {"n0a": 64 << 20, "n0b": 32 << 20, "n1": 64 << 20}
CTRLS = {  # serial: (device id, namespaces in nsid order, lbads)
    "SMG-NVME-512": ("nvme0", ["n0a", "n0b"], 9),
    "SMG-NVME-4K": ("nvme1", ["n1"], 12),
}
MODEL = "stormig NVMe controller"
FIO_SIZE = 4 << 20


def has_vfio_user_pci():
    out = subprocess.run([shutil.which(guestlib.QEMU) or
                          guestlib.QEMU, "-device", "help"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return b'"vfio-user-pci"' in out.stdout


class NvmeHost:
    """stormigd with the two controllers, and the QEMU using them."""

    def __init__(self, cfg, name, smp, memory_backend="memfd"):
        self.cfg, self.name, self.smp = cfg, name, smp
        wd = cfg["workdir"]
        args = []
        for node, path in cfg["images"].items():
            args += ["--blockdev", f"driver=file,node-name={node},"
                     f"filename={path},cache.direct=on"]
        self.sockets = {}
        for serial, (dev, nodes, lbads) in CTRLS.items():
            sock = os.path.join(wd, f"{name}.{dev}.sock")
            self.sockets[dev] = sock
            args += ["--device", f"nvme,id={dev},socket={sock},"
                     f"drive={':'.join(nodes)},serial={serial},"
                     f"num-queues=2,lbads={lbads}"]
        self.daemon = vhostlib.Stormigd(cfg["stormigd"], wd, name, args)
        qemu_args = []
        for dev, sock in self.sockets.items():
            qemu_args += ["-device", json.dumps({
                "driver": "vfio-user-pci", "id": dev,
                "socket": {"type": "unix", "path": sock}})]
        self.guest = guestlib.Guest(cfg["image"], wd, name=name + "-qemu",
                                    smp=smp, extra_args=qemu_args,
                                    memory_backend=memory_backend)

    def boot(self):
        self.guest.start()
        return self.guest.wait_boot(60)

    def close(self):
        self.guest.close()
        self.daemon.quit()

    def check_daemon_log(self):
        """A sanitizer report (instrumented build) fails the test."""
        with open(self.daemon.log_path, errors="replace") as f:
            log = f.read()
        if "Sanitizer" in log or "runtime error:" in log:
            raise guestlib.GuestError(f"stormigd {self.name} reported a "
                                      f"sanitizer error:\n{log[-3000:]}")


def controllers(guest):
    """{serial: /dev/nvmeN} as the guest names them."""
    found = {}
    for line in guest.check("for c in /sys/class/nvme/nvme*; do "
                            "echo ${c##*/} $(cat $c/serial); done"
                            ).splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[parts[1]] = "/dev/" + parts[0]
    if sorted(found) != sorted(CTRLS):
        raise guestlib.GuestError(f"the guest sees controllers {found}")
    return found


def nvme_json(guest, command):
    out = guest.check(f"nvme {command} -o json")
    return json.loads(out[out.index("{"):])


def check_identify(guest, ctrls):
    for serial, (dev, nodes, lbads) in CTRLS.items():
        ctrl = ctrls[serial]
        idc = nvme_json(guest, f"id-ctrl {ctrl}")
        expect_equal(idc["sn"].strip(), serial, f"{dev} serial")
        expect_equal(idc["mn"].strip(), MODEL, f"{dev} model")
        expect_equal(idc["nn"], len(nodes), f"{dev} namespaces")
        for nsid, node in enumerate(nodes, 1):
            ns = f"{ctrl}n{nsid}"
            idn = nvme_json(guest, f"id-ns {ns}")
            blocks = NS_SIZES[node] >> lbads
            expect_equal(idn["nsze"], blocks, f"{ns} size (blocks)")
            fmt = idn["lbafs"][idn["flbas"] & 0xf]
            expect_equal(fmt["ds"], lbads, f"{ns} LBA data size (log2)")
            expect_equal(int(guest.check(
                f"cat /sys/block/{ns[5:]}/queue/logical_block_size")),
                1 << lbads, f"{ns} logical block size")
            print(f"{ns}: {serial}, {blocks} blocks of {1 << lbads} B")


def io_queue_irqs(guest, ctrl):
    """Interrupts per I/O queue of ctrl: {"q1": n, ...} (q0, the admin
    queue, left out)."""
    name = ctrl[5:]
    counts = {}
    for line in guest.check("cat /proc/interrupts").splitlines():
        fields = line.split()
        if fields and fields[-1].startswith(name + "q") and \
                fields[-1] != name + "q0":
            nums = [int(x) for x in fields[1:] if x.isdigit()]
            counts[fields[-1][len(name):]] = sum(nums)
    return counts


def write_pattern(guest, ns, tag):
    """Writes 1 MiB of random data at 4 MiB into ns; returns its md5."""
    guest.check(f"dd if=/dev/urandom of=/tmp/{tag} bs=64k count=16 "
                "2>/dev/null")
    guest.check(f"dd if=/tmp/{tag} of={ns} bs=64k seek=64 count=16 "
                "oflag=direct 2>/dev/null")
    return guest.check(f"md5sum </tmp/{tag}").split()[0]


def read_pattern(guest, ns):
    return guest.check(f"dd if={ns} bs=64k skip=64 count=16 iflag=direct "
                       "2>/dev/null | md5sum").split()[0]


def check_vmm_migration_refused(host):
    for dev in host.sockets:
        info = next(d for d in host.daemon.cmd("query-devices")
                    if d["id"] == dev)
        if info["vmm-connected"] is not True or \
                info["vmm-migration"] is not False:
            raise guestlib.GuestError(f"query-devices {dev}: {info}")
    try:
        host.daemon.cmd("migrate", {"uri": "unix:" + os.path.join(
            host.cfg["workdir"], "nowhere.sock")})
    except guestlib.QmpError as e:
        why = ("the VMM connected to nvme0 does not support vfio-user "
               "migration; its state would be lost")
        if why not in str(e):
            raise guestlib.GuestError(f"migrate refused for another "
                                      f"reason: {e}")
        print(f"stormigd refuses to migrate: {why}")
    else:
        raise guestlib.GuestError("stormigd accepted to migrate although "
                                  "QEMU does not migrate the NVMe state")
    expect_equal(host.daemon.status(), "running", "stormigd after refusal")


def run_two_vcpus(cfg):
    host = NvmeHost(cfg, "smp2", 2)
    try:
        print(f"2 vCPUs: boot to prompt {host.boot():.1f}s")
        guest = host.guest
        ctrls = controllers(guest)
        check_identify(guest, ctrls)
        n512 = ctrls["SMG-NVME-512"]
        n4k = ctrls["SMG-NVME-4K"]
        expect_equal(sorted(io_queue_irqs(guest, n512)), ["q1", "q2"],
                     f"{n512} I/O queues")
        for ns in (f"{n512}n1", f"{n512}n2", f"{n4k}n1"):
            fio_verify(guest, ns, FIO_SIZE, engine="io_uring")
        # One more fio from each vCPU: both I/O queues carry requests.
        for cpu in (0, 1):
            guest.check(f"taskset -c {cpu} fio --name=q{cpu} "
                        f"--filename={n512}n2 --direct=1 --ioengine=libaio "
                        "--iodepth=4 --rw=randwrite --bs=4k --size=1M "
                        "--verify=crc32c --verify_fatal=1 >/dev/null",
                        timeout=60)
        irqs = io_queue_irqs(guest, n512)
        if sorted(irqs) != ["q1", "q2"] or 0 in irqs.values():
            raise guestlib.GuestError(f"{n512} I/O queue interrupts: "
                                      f"{irqs}")
        print(f"{n512} I/O queue interrupts: {irqs}")

        check_vmm_migration_refused(host)

        md5 = write_pattern(guest, f"{n4k}n1", "before-reset")
        guest.check(f"nvme reset {n4k}")
        expect_equal(read_pattern(guest, f"{n4k}n1"), md5,
                     "data after nvme reset")
        fio_verify(guest, f"{n4k}n1", FIO_SIZE, engine="io_uring")
        print("nvme reset: data kept, fio passes after it")

        md5 = write_pattern(guest, f"{n512}n1", "before-reboot")
        # The harness runs QEMU with -no-reboot (a guest that resets
        # itself ends the test); this one must boot again.
        guest.qmp.command("set-action", {"reboot": "reset"})
        rebooted = time.monotonic()
        guest.console.write(b"sync; reboot -f\n")
        guest.console.expect(b"SeaBIOS", 60, "the firmware after reboot")
        guest.wait_boot(90)
        print(f"guest reboot: back at the prompt after "
              f"{time.monotonic() - rebooted:.1f}s")
        ctrls = controllers(guest)
        expect_equal(read_pattern(guest, f"{ctrls['SMG-NVME-512']}n1"), md5,
                     "data after a guest reboot")
        fio_verify(guest, f"{ctrls['SMG-NVME-512']}n1", FIO_SIZE,
                   engine="io_uring")
        print("guest reboot: data kept, fio passes after it")
        guest.shutdown()
    finally:
        host.close()
    host.check_daemon_log()
    if ram_mapped_without_fd(host):
        raise guestlib.GuestError("guest RAM in a shared memfd was mapped "
                                  "without its fd")


def ram_mapped_without_fd(host):
    """Whether stormigd logged the region at guest address 0 (low RAM) as
    mapped without an fd (ROMs never have one: they do not count)."""
    with open(host.daemon.log_path, errors="replace") as f:
        return re.search(r"DMA_MAP 0x0\+0x[0-9a-f]+ without an fd",
                         f.read()) is not None


def run_one_vcpu(cfg):
    host = NvmeHost(cfg, "smp1", 1, memory_backend="ram")
    try:
        print(f"1 vCPU, RAM without an fd: boot to prompt "
              f"{host.boot():.1f}s")
        guest = host.guest
        ctrls = controllers(guest)
        n4k = ctrls["SMG-NVME-4K"]
        expect_equal(sorted(io_queue_irqs(guest, n4k)), ["q1"],
                     f"{n4k} I/O queues")
        md5 = write_pattern(guest, f"{n4k}n1", "no-fd")
        # O_DIRECT reads go to the controller, not the page cache.
        expect_equal(read_pattern(guest, f"{n4k}n1"), md5,
                     "data read back from RAM without an fd")
        fio_verify(guest, f"{n4k}n1", FIO_SIZE, engine="io_uring")
        guest.shutdown()
    finally:
        host.close()
    host.check_daemon_log()
    if not ram_mapped_without_fd(host):
        raise guestlib.GuestError("guest RAM was mapped with an fd: the "
                                  "DMA_READ/DMA_WRITE path was not used")


def main():
    args, image, workdir = guestlib.setup_test(__doc__)
    if not has_vfio_user_pci():
        print(f"SKIP: {guestlib.QEMU} has no vfio-user-pci device")
        sys.exit(guestlib.SKIP)
    images = {node: guestlib.make_disk(os.path.join(workdir, node + ".img"),
                                       size)
              for node, size in NS_SIZES.items()}
    cfg = {"workdir": workdir, "image": image, "images": images,
           "stormigd": vhostlib.find_stormigd()}

    def body():
        run_two_vcpus(cfg)
        run_one_vcpu(cfg)

    guestlib.run_test(body)
    for path in images.values():
        os.unlink(path)


if __name__ == "__main__":
    main()
