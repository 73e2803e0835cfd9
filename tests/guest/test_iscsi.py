"""A real iSCSI target (tgtd) seen from the host and from a guest.

The host checks the LUN with libiscsi's tools (target listed, INQUIRY,
READ CAPACITY(16) matching the backing file).  Then a guest gets the LUN
through QEMU's own libiscsi driver as a scsi-block (passthrough) disk: it
must see the target's INQUIRY data and size, keep data intact under fio
verify, and get persistent reservations through to tgtd.
"""

import os
import subprocess

import guestlib
import tgtlib
from guestcheck import FIO_SIZE, expect_equal, fio_verify, scsi_disk_args

LUN_SIZE = 32 << 20
PR_KEY = "0x5354524d"


def main():
    _, image, workdir = guestlib.setup_test(__doc__)
    backing = os.path.join(workdir, "lun.img")

    def body():
        with tgtlib.Tgtd(workdir) as tgtd:
            url = tgtd.add_lun(backing, size=LUN_SIZE)
            print(f"target {url}")
            check_from_host(tgtd, url)
            if qemu_has_iscsi():
                check_from_guest(image, workdir, url)
            else:
                print("QEMU lacks the iscsi block driver "
                      "(qemu-block-extra): guest part not run")
        os.unlink(backing)

    guestlib.run_test(body)


def check_from_host(tgtd, url):
    iqn = url.split("/")[3]
    targets = tgtlib.iscsi_targets(f"iscsi://127.0.0.1:{tgtd.port}")
    if iqn not in targets:
        raise tgtlib.TgtError(f"iscsi-ls lists {targets}, not {iqn}")
    inq = tgtlib.iscsi_inquiry(url)
    expect_equal(inq.get("Peripheral Device Type"), "DIRECT_ACCESS",
                 "iscsi-inq device type")
    expect_equal(inq.get("Vendor"), "IET", "iscsi-inq vendor")
    expect_equal(tgtlib.iscsi_capacity(url), (LUN_SIZE // 512, 512),
                 "iscsi-readcapacity16 (blocks, block size)")


def qemu_has_iscsi():
    result = subprocess.run([guestlib.QEMU, "-drive", "format=help"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return b"iscsi" in result.stdout


def check_from_guest(image, workdir, url):
    guest = guestlib.Guest(
        image, workdir, name="guest",
        extra_args=scsi_disk_args(f"file={url},format=raw,cache=none",
                                  device="scsi-block"))
    try:
        guest.start()
        print(f"boot to prompt {guest.wait_boot():.1f}s")
        inq = guest.check("sg_inq /dev/sda")
        if "Vendor identification: IET" not in inq:
            raise guestlib.GuestError(f"guest does not see tgtd's LUN:\n{inq}")
        cap = guest.check("sg_readcap /dev/sda")
        if f"Number of logical blocks={LUN_SIZE // 512}" not in cap:
            raise guestlib.GuestError(f"wrong capacity in the guest:\n{cap}")
        fio_verify(guest, "/dev/sda", FIO_SIZE)
        check_reservation(guest)
        guest.shutdown()
    finally:
        guest.close()


def check_reservation(guest):
    """Register a key and reserve (Write Exclusive); tgtd reports both."""
    guest.check(f"sg_persist -n --out --register --param-sark={PR_KEY} "
                "/dev/sda")
    guest.check(f"sg_persist -n --out --reserve --param-rk={PR_KEY} "
                "--prout-type=1 /dev/sda")
    keys = guest.check("sg_persist -n --in --read-keys /dev/sda")
    if PR_KEY not in keys:
        raise guestlib.GuestError(f"key {PR_KEY} not registered:\n{keys}")
    resv = guest.check("sg_persist -n --in --read-reservation /dev/sda")
    if PR_KEY not in resv or "Write Exclusive" not in resv:
        raise guestlib.GuestError(f"reservation not held:\n{resv}")
    guest.check(f"sg_persist -n --out --release --param-rk={PR_KEY} "
                "--prout-type=1 /dev/sda")
    print("persistent reservation: register, reserve, release through tgtd")


if __name__ == "__main__":
    main()
