"""Guest on QEMU's own virtio-scsi disk: fio verify, INQUIRY, capacity.

Proves the guest image and the harness: the guest sees the disk QEMU was
given (vendor, product, size) and data written through virtio-scsi reads
back intact.
"""

import os

import guestlib
from guestcheck import FIO_SIZE, expect_equal, fio_verify, scsi_disk_args

DISK_SIZE = 64 << 20
VENDOR = "STORMIG"
PRODUCT = "GUESTDISK"


def main():
    _, image, workdir = guestlib.setup_test(__doc__)
    disk = guestlib.make_disk(os.path.join(workdir, "disk.img"), DISK_SIZE)

    drive = f"file={disk},format=raw,cache=none,aio=io_uring"

    def body():
        guest = guestlib.Guest(
            image, workdir, name="guest",
            extra_args=scsi_disk_args(drive, vendor=VENDOR, product=PRODUCT))
        try:
            guest.start()
            print(f"boot to prompt {guest.wait_boot():.1f}s")
            inq = guest.check("sg_inq /dev/sda")
            expect_equal(_field(inq, "Vendor identification"), VENDOR,
                         "INQUIRY vendor")
            expect_equal(_field(inq, "Product identification"), PRODUCT,
                         "INQUIRY product")
            cap = guest.check("sg_readcap /dev/sda")
            expect_equal(_number(cap, "Number of logical blocks"),
                         DISK_SIZE // 512, "READ CAPACITY blocks")
            expect_equal(_number(cap, "Logical block length"), 512,
                         "READ CAPACITY block length")
            fio_verify(guest, "/dev/sda", FIO_SIZE)
            guest.shutdown()
        finally:
            guest.close()
        os.unlink(disk)

    guestlib.run_test(body)


def _field(text, name):
    for line in text.splitlines():
        if line.strip().startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise guestlib.GuestError(f"no '{name}' in:\n{text}")


def _number(text, name):
    # sg_readcap: "Number of logical blocks=131072", "... length=512 bytes"
    for line in text.splitlines():
        if name + "=" in line:
            return int(line.split(name + "=", 1)[1].split()[0])
    raise guestlib.GuestError(f"no '{name}' in:\n{text}")


if __name__ == "__main__":
    main()
