"""Guest on QEMU's own NVMe controller: nvme-cli identifies it, fio verify.

Proves the guest image's NVMe side (driver, nvme-cli and its libraries):
the guest sees the serial number and namespace size QEMU was given, and
data written with io_uring reads back intact.
"""

import json
import os

import guestlib
from guestcheck import FIO_SIZE, expect_equal, fio_verify

DISK_SIZE = 64 << 20
SERIAL = "STORMIG0001"


def main():
    _, image, workdir = guestlib.setup_test(__doc__)
    disk = guestlib.make_disk(os.path.join(workdir, "disk.img"), DISK_SIZE)
    args = ["-drive", f"if=none,id=nvm0,file={disk},format=raw,cache=none",
            "-device", f"nvme,serial={SERIAL},drive=nvm0"]

    def body():
        guest = guestlib.Guest(image, workdir, name="guest", extra_args=args)
        try:
            guest.start()
            print(f"boot to prompt {guest.wait_boot():.1f}s")
            ctrl = _json(guest.check("nvme id-ctrl /dev/nvme0 -o json"))
            expect_equal(ctrl["sn"].strip(), SERIAL, "controller serial")
            ns = _json(guest.check("nvme id-ns /dev/nvme0n1 -o json"))
            lba_size = 1 << ns["lbafs"][ns["flbas"] & 0xf]["ds"]
            expect_equal(ns["nsze"] * lba_size, DISK_SIZE, "namespace size")
            fio_verify(guest, "/dev/nvme0n1", FIO_SIZE, engine="io_uring")
            guest.shutdown()
        finally:
            guest.close()
        os.unlink(disk)

    guestlib.run_test(body)


def _json(text):
    try:
        return json.loads(text[text.index("{"):])
    except ValueError as e:
        raise guestlib.GuestError(f"nvme-cli printed no JSON ({e}):\n{text}")


if __name__ == "__main__":
    main()
