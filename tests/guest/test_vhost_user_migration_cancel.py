"""A VM migration cancelled half-way: the guest keeps running on the
source, whose stormigd never stopped serving it and owns its disks.

The source stormigd is set up for the VMM-coordinated handoff and waits;
QEMU migrates slowly (bandwidth capped) and is cancelled while RAM is
still being copied, then the stormigd migration is cancelled as well.
fio verify runs on both disks throughout and afterwards; the destination
stormigd never owned a disk.
"""

import time

import guestlib
import vhostlib

IMAGE_SIZE = 64 << 20
LUN_SIZE = 32 << 20
FIO_SIZE = 4 << 20
CHECK_SIZE = 16 << 20


def main():
    vhostlib.main_with_disks(__doc__, lambda cfg: run(cfg, cfg["lun_file"]), IMAGE_SIZE, LUN_SIZE)


def cancel_qemu_migration(src, dst):
    qmp = src.guest.qmp
    # 4 MiB/s: the guest's non-zero RAM takes many seconds to copy.
    qmp.command("migrate-set-parameters", {"max-bandwidth": 4 << 20})
    qmp.command("migrate", {"uri": dst.guest.incoming})
    guestlib.wait_for(
        lambda: qmp.command("query-migrate").get("ram", {})
        .get("transferred", 0) > (2 << 20), 30, "RAM to be copied")
    qmp.command("migrate_cancel")
    info = guestlib.wait_for(
        lambda: (lambda i: i if i["status"] in ("cancelled", "failed",
                                                "completed") else None)(
            qmp.command("query-migrate")), 30, "the cancel")
    if info["status"] != "cancelled":
        raise guestlib.GuestError(f"QEMU migration {info['status']}, "
                                  "expected cancelled")
    if src.guest.status() != "running":
        raise guestlib.GuestError("the guest does not run on the source")


def run(cfg, lun_file):
    src = vhostlib.Host(cfg, "h0")
    dst = vhostlib.Host(cfg, "h1", incoming=True)
    try:
        print(f"boot to prompt {src.boot():.1f}s")
        devs = vhostlib.guest_disks(src.guest)
        vhostlib.fio_loop_start(src.guest, devs, FIO_SIZE)
        dst.await_incoming(src)
        vhostlib.start_device_handoff(src, dst)
        started = time.monotonic()
        cancel_qemu_migration(src, dst)
        src.daemon.cmd("migrate_cancel")
        info = vhostlib.wait_migration(src.daemon, 10, ("cancelled",))
        print(f"QEMU and stormigd migrations cancelled after "
              f"{time.monotonic() - started:.1f}s "
              f"(stormigd: {info.get('error-desc')})")
        if not src.daemon.owns_disks() or src.daemon.status() != "running":
            raise guestlib.GuestError("the source stormigd does not run "
                                      "with its disks")
        if any(b["owned"] for b in dst.daemon.cmd("query-block")):
            raise guestlib.GuestError("the destination took a disk")
        dst.close()
        rounds = {d: vhostlib.fio_rounds(src.guest, d) for d in devs}
        for dev in devs:
            guestlib.wait_for(lambda: vhostlib.fio_rounds(src.guest, dev) >
                              rounds[dev], 90, f"a new fio round on {dev}",
                              interval=0.5)
        done = vhostlib.fio_loop_stop(src.guest, devs, FIO_SIZE)
        print("fio rounds verified without error: " +
              ", ".join(f"{d} {n}" for d, n in done.items()))
        src.guest.check("sync")
        for dev, path in zip(devs, (cfg["image_file"], lun_file)):
            if (vhostlib.guest_md5(src.guest, dev, CHECK_SIZE) !=
                    vhostlib.file_md5(path, CHECK_SIZE)):
                raise guestlib.GuestError(f"{dev} differs from {path}")
        src.guest.shutdown()
    finally:
        src.close()
        dst.close()


if __name__ == "__main__":
    main()
