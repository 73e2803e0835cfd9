"""A guest whose SCSI controller is stormigd's vhost-user-scsi.

QEMU (7.2 or 11.1) runs `-device vhost-user-scsi-pci,num_queues=2` on a
shared memfd; stormigd serves a scsi-hd on an image file (LUN 0) and a
scsi-block on a tgtd LUN (LUN 1).  Two vCPUs, so the guest uses both
request queues.  The guest must see both disks with the identity and size
configured (sg_inq, sg_readcap), and fio verify must pass on each.
"""

import os

import guestlib
import tgtlib
import vhostlib
from guestcheck import fio_verify

IMAGE_SIZE = 64 << 20
LUN_SIZE = 32 << 20
FIO_SIZE = 8 << 20


def main():
    args, image, workdir = guestlib.setup_test(__doc__)
    img = guestlib.make_disk(os.path.join(workdir, "hd.img"), IMAGE_SIZE)
    lun_file = os.path.join(workdir, "lun.img")

    def body():
        with tgtlib.Tgtd(workdir) as tgtd:
            cfg = {"workdir": workdir, "image": image, "image_file": img,
                   "stormigd": vhostlib.find_stormigd(),
                   "lun_url": tgtd.add_lun(lun_file, size=LUN_SIZE),
                   "smp": 2}
            host = vhostlib.Host(cfg, "h0")
            try:
                print(f"boot to prompt {host.boot():.1f}s")
                check(host)
                host.guest.shutdown()
            finally:
                host.close()

    guestlib.run_test(body)
    os.unlink(img)
    os.unlink(lun_file)


def expect_in(text, wanted, what):
    if wanted not in text:
        raise guestlib.GuestError(f"{what}: no '{wanted}' in:\n{text}")


def check(host):
    guest = host.guest
    hd, pt = vhostlib.guest_disks(guest)
    inq = guest.check(f"sg_inq {hd}")
    expect_in(inq, f"Vendor identification: {vhostlib.VENDOR}", hd)
    expect_in(inq, f"Product identification: {vhostlib.PRODUCT}", hd)
    expect_in(inq, f"Unit serial number: {vhostlib.SERIAL}", hd)
    expect_in(guest.check(f"sg_readcap {hd}"),
              f"Number of logical blocks={IMAGE_SIZE // 512}", hd)
    # Passthrough: tgtd's own identity and the LUN's size.
    inq = guest.check(f"sg_inq {pt}")
    expect_in(inq, "Vendor identification: IET", pt)
    expect_in(inq, "Product identification: VIRTUAL-DISK", pt)
    expect_in(guest.check(f"sg_readcap {pt}"),
              f"Number of logical blocks={LUN_SIZE // 512}", pt)
    print(f"{hd}: {vhostlib.VENDOR} {vhostlib.PRODUCT} {vhostlib.SERIAL}, "
          f"{IMAGE_SIZE >> 20} MiB; {pt}: IET VIRTUAL-DISK, "
          f"{LUN_SIZE >> 20} MiB")
    for dev in (hd, pt):
        fio_verify(guest, dev, FIO_SIZE)
    # Both request queues carried requests (one per vCPU).
    irqs = guest.check("grep virtio.-request /proc/interrupts")
    counts = [sum(int(x) for x in line.split()[1:3])
              for line in irqs.splitlines() if line.strip()]
    if len(counts) != 2 or 0 in counts:
        raise guestlib.GuestError(f"request queue interrupts: {irqs}")
    print(f"request queue interrupts: {counts}")


if __name__ == "__main__":
    main()
