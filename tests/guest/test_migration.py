"""Live migration of a guest while fio verifies its virtio-scsi disk.

The source and destination QEMU share the disk image; the destination is
started with -incoming.  fio (io_uring, crc32c verify) is started on the
source, the guest is migrated mid-run, and the harness follows the guest to
the destination's console, where fio must finish with no error.
"""

import os

import guestlib
from guestcheck import fio_running, fio_start, fio_wait, scsi_disk_args

DISK_SIZE = 64 << 20
FIO_SIZE = 16 << 20
FIO_LOOPS = 6


def main():
    _, image, workdir = guestlib.setup_test(__doc__)
    disk = guestlib.make_disk(os.path.join(workdir, "disk.img"), DISK_SIZE)
    drive = f"file={disk},format=raw,cache=none,aio=io_uring"

    def body():
        src = guestlib.Guest(image, workdir, name="src",
                             extra_args=scsi_disk_args(drive))
        dst = None
        try:
            src.start()
            print(f"boot to prompt {src.wait_boot():.1f}s")
            src.check("uname -r > /tmp/before-migration")
            fio_start(src, "/dev/sda", FIO_SIZE, engine="io_uring",
                      loops=FIO_LOOPS)
            guestlib.wait_for(lambda: fio_running(src), 30, "fio to start")
            dst = guestlib.start_destination(src)
            info = guestlib.migrate(src, dst)
            ram = info.get("ram", {})
            print(f"migration: {info.get('total-time')} ms total, "
                  f"downtime {info.get('downtime')} ms, "
                  f"{ram.get('transferred', 0) >> 20} MiB sent")
            if src.proc.returncode is None:
                raise guestlib.GuestError("source QEMU still runs")
            # Same shell, same files: the destination continues the guest.
            dst.check("[ -e /tmp/before-migration ]")
            if not fio_running(dst):
                raise guestlib.GuestError(
                    "fio ended before the migration completed; the test "
                    "no longer migrates under I/O (raise FIO_LOOPS)")
            fio_wait(dst, FIO_SIZE, loops=FIO_LOOPS, timeout=90)
            dst.shutdown()
        finally:
            src.close()
            if dst:
                dst.close()
        os.unlink(disk)

    guestlib.run_test(body)


if __name__ == "__main__":
    main()
