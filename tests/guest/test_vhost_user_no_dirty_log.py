"""A vhost-user-scsi back end without dirty logging cannot be migrated.

stormigd's controller with dirty-log=off offers neither VHOST_F_LOG_ALL
nor LOG_SHMFD, so QEMU registers a migration blocker: `migrate` must
fail naming it, and the guest must go on running with working disks.
"""

import os

import guestlib
import vhostlib
from guestcheck import fio_verify

IMAGE_SIZE = 32 << 20


def main():
    args, image, workdir = guestlib.setup_test(__doc__)
    img = guestlib.make_disk(os.path.join(workdir, "hd.img"), IMAGE_SIZE)

    def body():
        cfg = {"workdir": workdir, "image": image, "image_file": img,
               "stormigd": vhostlib.find_stormigd()}
        host = vhostlib.Host(cfg, "h0", dirty_log=False)
        try:
            print(f"boot to prompt {host.boot():.1f}s")
            (hd,) = vhostlib.guest_disks(host.guest)
            uri = "unix:" + os.path.join(workdir, "nobody-listens")
            try:
                host.guest.qmp.command("migrate", {"uri": uri})
            except guestlib.QmpError as e:
                reason = str(e)
            else:
                raise guestlib.GuestError("QEMU accepted the migration")
            # QEMU 7.2 and 11.1 name the first missing piece (LOG_SHMFD,
            # then VHOST_F_LOG_ALL).
            if ("Migration disabled" not in reason or
                    not ("LOG_SHMFD" in reason or "LOG_ALL" in reason)):
                raise guestlib.GuestError(f"unexpected refusal: {reason}")
            print(f"migrate refused: {reason}")
            if host.guest.status() != "running":
                raise guestlib.GuestError("the guest stopped")
            fio_verify(host.guest, hd, 4 << 20)
            host.guest.shutdown()
        finally:
            host.close()

    guestlib.run_test(body)
    os.unlink(img)


if __name__ == "__main__":
    main()
